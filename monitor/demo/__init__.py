"""`monitor demo` and the traffic generator: broker, simulated serving, receiver, live view."""
