"""Helpers shared by the test suites: Kafka producers and consumer settings for the fixtures."""
