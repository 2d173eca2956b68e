"""asyncinfer's server with ModelInfer answered by bench/_bare_triton.py's inference function.

Everything of asyncinfer's gRPC framework stays (its handlers, admission, reply limits, call
counting, server options, uvloop), and the inference data plane is left out: the request message
asyncinfer parsed goes to the bare server's ``infer``, whose reply is serialized as the bare
server does. Measured beside asyncinfer and the bare server (``bench/_percall_probe.py --servers
asyncinfer,framework,bare``), it splits asyncinfer's cost over the bare server's into the
framework's part (framework - bare) and the data plane's (asyncinfer - framework).

Run: python bench/_framework_server.py --model-repository DIR [asyncinfer serve's flags]
"""

from __future__ import annotations

import sys

import _bare_triton as bare

from asyncinfer.cli import main
from asyncinfer.inference.rpc import infer as infer_rpc
from asyncinfer.inference.wire.received import ReceivedInfer


async def _bare_execute(self: infer_rpc.ModelInferRpc, received: ReceivedInfer) -> bytes:
    # The same fields as tritonclient's message, which is all bare.infer reads; inputs split
    # off as views (messages from 64 KiB on) go back in.
    message = received.message
    if received.raw is not None:
        message.raw_input_contents.extend(bytes(view) for view in received.raw)
    reply: bytes = bare.infer(message).SerializeToString()
    return reply


if __name__ == "__main__":
    infer_rpc.ModelInferRpc.execute = _bare_execute  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))
