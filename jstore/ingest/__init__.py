"""Ingestion: the Kafka lander and database extracts into the landing zone, and demo data."""
