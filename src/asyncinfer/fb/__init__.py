"""FlatBuffers code that flatc generates from schemas/ when the package is built (not committed).

``asyncinfer.fb.TensorMessage`` and ``asyncinfer.fb.Tensor`` are flatc's standard Python API
for the tensor message (``tensor.fbs``, shipped beside them): use them to read or build the
message outside asyncinfer's codec. The codec itself (:mod:`asyncinfer.codecs`) does not go
through them on its hot path: it verifies every offset first and reads and writes the layout
directly, which is several times faster in Python (see docs/codecs.md).
"""
