"""The students' tools: the release bundle, grade check, grade pack."""
