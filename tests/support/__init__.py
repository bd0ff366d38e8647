"""Helpers shared by the test suites: Kafka producers and consumer settings for the fixtures."""

KAFKA_ENV = "MONITOR_TEST_KAFKA"  # host:port of a real Kafka to test against
DATABASE_ENV = "MONITOR_TEST_DATABASE_URL"  # a PostgreSQL URL: storage tests run there too
