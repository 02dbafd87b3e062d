"""The tutors' tools: the scoring app, scores, review pages, exports, the platforms."""
