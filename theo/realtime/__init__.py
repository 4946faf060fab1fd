"""Live transcription over WebSocket: OpenAI's Realtime API, transcription sessions only.

The route (``endpoint.py``) serves sessions (``session.py``): appended audio is decoded
(``audio.py``), cut into utterances by server VAD (``vad.py``, ``turns.py``), and each
utterance is decoded by the model's runner (``decoder.py``), with text while someone
talks (``partials.py``). Events and session configuration follow the OpenAI SDK's types
(``events.py``, ``config.py``).
"""

from theo.realtime.endpoint import add_realtime_routes

__all__ = ["add_realtime_routes"]
