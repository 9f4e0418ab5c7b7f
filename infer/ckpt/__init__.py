"""Checkpoint tools: extracting small models, merging voices, reading and editing their info."""
