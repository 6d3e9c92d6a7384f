"""Ingestion worker: walk a folder, embed every image, upsert into the store."""
