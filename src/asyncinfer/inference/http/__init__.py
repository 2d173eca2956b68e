"""The HTTP/REST front end of the inference service (KServe v2 with Triton's extensions):
``front_end.py`` serves it on the Server's loop, ``routes.py`` maps each endpoint onto the
service, ``codec.py`` is its JSON and binary tensor codec (what ``wire/`` is for gRPC),
``generate.py`` the generate extension, ``body.py`` bounded body reads, ``proto_json.py``
Triton's JSON of protobuf messages."""

from .front_end import HttpFrontEnd

__all__ = ["HttpFrontEnd"]
