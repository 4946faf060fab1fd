"""BentoML wiring: the per-model runner services and the client pool the HTTP app calls."""
