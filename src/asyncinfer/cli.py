"""The ``asyncinfer`` console script: serve an app, or drive any service with a load client.

    asyncinfer serve --app examples.ping:build --port 50051 --workers 2
    asyncinfer serve --model-repository examples/model_repository --grpc-port 8001
    asyncinfer sync  127.0.0.1:50051 /asyncinfer.examples.Ping/Ping --request '{"payload": "aGk="}'
    asyncinfer async 127.0.0.1:50051 /asyncinfer.examples.Ping/Ping --concurrency 32 --duration 5
    asyncinfer siege 127.0.0.1:50051 /asyncinfer.examples.Ping/Ping --rate 2000 --shape linear \\
        --rate-end 8000 --duration 10 --json siege.json
    asyncinfer siege 10.0.0.1:8001,10.0.0.2:8001 ...      # round-robin over several servers
    asyncinfer siege http://127.0.0.1:8000 /v2/models/simple/infer --request '{"inputs": ...}' \
        --rate 500 --duration 10                          # an HTTP endpoint (body: --request)
    asyncinfer health 127.0.0.1:8001                      # exit 0 when SERVING (HEALTHCHECK)
    asyncinfer health http://127.0.0.1:8000               # the same over HTTP (/v2/health/ready)

Load clients find the RPC and its message types through server reflection, and build the
request from JSON (protobuf's JSON mapping; bytes are base64). For a FlatBuffers or raw method
give --codec; the JSON is then encoded by that codec:

    asyncinfer sync 127.0.0.1:50058 /asyncinfer.examples.flatbuffers.FlatClassifier/Classify \
        --codec flatbuffers --request '{"tensors": [{"name": "features", "datatype": "FP32",
        "shape": [1, 16], "data": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}]}'
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, logs
from .client import AsyncClient, Constant, Cyclic, Linear, Method, Rate, Siege, SyncClient
from .client.health import check_health
from .client.http_calls import is_http_url
from .client.http_client import HttpClient
from .client.reflection import resolve_method
from .codecs import codec_named
from .errors import AsyncInferError, ConfigError, UsageError
from .inference import build_server
from .inference.latency import MetricsConfig
from .restriction import Restrictions
from .server import Server
from .tls import ClientTls, ServerTls
from .tracing import TraceConfig
from .workers import run_loop, serve

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except AsyncInferError as exc:
        print(f"asyncinfer {args.command}: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncinfer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"asyncinfer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands.add_parser("serve", help="serve an application's services"))
    _add_health(commands.add_parser("health", help="ask a server whether it is serving"))
    for name, help_text in (
        ("sync", "one call in flight; prints calls/s"),
        ("async", "many calls in flight (closed loop)"),
        ("siege", "open-loop load at a scheduled rate"),
    ):
        _add_load(commands.add_parser(name, help=help_text), name)
    return parser


def _add_serve(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="MODULE:FACTORY returning a Server")
    source.add_argument(
        "--model-repository", help="serve the Triton-compatible inference service over DIR"
    )
    _add_inference_flags(parser)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--reuse-port", action="store_true", default=None)
    parser.add_argument("--grace", type=float, default=None, help="drain seconds on stop")
    parser.add_argument(
        "--max-receive-message-bytes",
        type=int,
        default=None,
        metavar="N",
        help="largest request accepted, compressed requests after inflation (inference "
        "service default: 64 MiB)",
    )
    parser.add_argument(
        "--liveness-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --workers: replace a worker whose loop sent no heartbeat for this long",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this HTTP port (0 picks one; off when not given)",
    )
    parser.add_argument(
        "--metrics-address",
        default=None,
        metavar="HOST",
        help="where the metrics endpoint listens (default: --host); e.g. 127.0.0.1 while gRPC "
        "listens on 0.0.0.0",
    )
    _add_server_security_flags(parser)
    _add_http_security_flags(parser)
    parser.add_argument(
        "--trace-config",
        action="append",
        default=[],
        metavar="[MODE,]SETTING=VALUE",
        help="tritonserver's tracing flags (OpenTelemetry): rate=N, level=TIMESTAMPS|TENSORS, "
        "count=N, opentelemetry,url=URL, opentelemetry,resource=KEY=VALUE (repeatable)",
    )
    parser.add_argument(
        "--log-verbose",
        type=int,
        default=0,
        metavar="N",
        help="0: info and above; 1 or more: debug records as well",
    )
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="structured log lines"
    )
    parser.add_argument(
        "--log-file", default=None, metavar="PATH", help="append log lines here (default stderr)"
    )
    for level in ("info", "warning", "error"):
        parser.add_argument(
            f"--log-{level}",
            type=_flag_bool,
            nargs="?",
            const=True,
            default=True,
            metavar="BOOL",
            help=f"log {level} records (default true)",
        )
    _add_unsupported_flags(parser)
    parser.set_defaults(run=_run_serve)


#: tritonserver's flags that asyncinfer does not have: each is refused by name, never ignored.
UNSUPPORTED_TRITON_FLAGS = (
    "--allow-cpu-metrics", "--allow-gpu-metrics", "--allow-sagemaker", "--allow-vertex-ai",
    "--backend-config", "--backend-directory", "--buffer-manager-thread-count",
    "--cache-config", "--cache-directory", "--cuda-memory-pool-byte-size",
    "--cuda-virtual-address-size", "--enable-peer-access",
    "--exit-on-error", "--grpc-header-forward-pattern", "--grpc-http2-max-ping-strikes",
    "--grpc-http2-max-pings-without-data", "--grpc-http2-min-recv-ping-interval-without-data",
    "--grpc-infer-allocation-pool-size", "--grpc-infer-response-compression-level",
    "--grpc-keepalive-permit-without-calls", "--grpc-keepalive-time",
    "--grpc-keepalive-timeout", "--grpc-max-response-pool-size", "--host-policy",
    "--http-header-forward-pattern", "--http-thread-count", "--id", "--metrics-interval-ms",
    "--min-supported-compute-capability", "--model-config-name", "--model-load-retry-count",
    "--model-load-thread-count", "--model-namespacing", "--model-store",
    "--pinned-memory-pool-byte-size", "--rate-limit", "--rate-limit-resource",
    "--repoagent-directory", "--response-cache-byte-size", "--sagemaker-port",
    "--sagemaker-safe-port-range", "--sagemaker-thread-count", "--strict-model-config",
    "--vertex-ai-default-model", "--vertex-ai-port", "--vertex-ai-thread-count",
)  # fmt: skip


def _add_unsupported_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "tritonserver flags asyncinfer does not support (each is refused with a message)"
    )
    for flag in UNSUPPORTED_TRITON_FLAGS:
        group.add_argument(
            flag, nargs="?", const="", default=None, dest=_unsupported_dest(flag),
            help=argparse.SUPPRESS,
        )  # fmt: skip


def _unsupported_dest(flag: str) -> str:
    return "unsupported_" + flag.removeprefix("--").replace("-", "_")


def _refuse_unsupported(args: argparse.Namespace) -> None:
    given = [f for f in UNSUPPORTED_TRITON_FLAGS if getattr(args, _unsupported_dest(f)) is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: tritonserver flag(s) not supported by asyncinfer "
            "(see `asyncinfer serve --help` for the flags it has)"
        )


def _flag_bool(text: str) -> bool:
    """tritonserver's boolean flag values."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _add_server_security_flags(parser: argparse.ArgumentParser) -> None:
    """tritonserver's TLS and restricted-protocol flags for the gRPC port."""
    group = parser.add_argument_group("gRPC security (tritonserver's flags)")
    for flag, help_text in (
        ("--grpc-use-ssl", "serve gRPC over TLS (needs --grpc-server-cert and --grpc-server-key)"),
        (
            "--grpc-use-ssl-mutual",
            "TLS and require a client certificate signed by --grpc-root-cert",
        ),
    ):
        group.add_argument(
            flag,
            type=_flag_bool,
            nargs="?",
            const=True,
            default=False,
            metavar="BOOL",
            help=help_text,
        )
    group.add_argument("--grpc-server-cert", default=None, metavar="PEM")
    group.add_argument("--grpc-server-key", default=None, metavar="PEM")
    group.add_argument(
        "--grpc-root-cert", default=None, metavar="PEM", help="CA of client certificates"
    )
    group.add_argument(
        "--grpc-restricted-protocol",
        action="append",
        default=[],
        metavar="PROTOCOLS:KEY=VALUE",
        help="only calls with header triton-grpc-protocol-KEY: VALUE may use these protocols "
        "(comma-separated; repeatable, one group per protocol)",
    )


def _add_http_security_flags(parser: argparse.ArgumentParser) -> None:
    """TLS and restricted APIs on the HTTP port, named as the gRPC ones are."""
    group = parser.add_argument_group("HTTP security (with --model-repository)")
    for flag, help_text in (
        ("--http-use-ssl", "serve HTTP over TLS (needs --http-server-cert and --http-server-key)"),
        (
            "--http-use-ssl-mutual",
            "TLS and require a client certificate signed by --http-root-cert",
        ),
    ):
        group.add_argument(
            flag, type=_flag_bool, nargs="?", const=True, default=False, metavar="BOOL",
            help=help_text,
        )  # fmt: skip
    group.add_argument("--http-server-cert", default=None, metavar="PEM")
    group.add_argument("--http-server-key", default=None, metavar="PEM")
    group.add_argument("--http-root-cert", default=None, metavar="PEM", help="CA of clients")
    group.add_argument(
        "--http-restricted-api",
        action="append",
        default=[],
        metavar="APIS:KEY=VALUE",
        help="only requests with header KEY: VALUE may use these APIs (comma-separated; "
        "repeatable, one group per API; tritonserver's API names)",
    )


def _http_security(args: argparse.Namespace) -> dict[str, Any]:
    """build_server's http_tls and http_restrictions from the --http-* security flags."""
    settings: dict[str, Any] = {}
    if args.http_use_ssl or args.http_use_ssl_mutual:
        if not (args.http_server_cert and args.http_server_key):
            raise ConfigError("--http-use-ssl needs --http-server-cert and --http-server-key")
        settings["http_tls"] = ServerTls(
            args.http_server_cert, args.http_server_key,
            root_cert=args.http_root_cert, mutual=args.http_use_ssl_mutual,
        )  # fmt: skip
    elif args.http_server_cert or args.http_server_key or args.http_root_cert:
        raise ConfigError("--http-*-cert/key flags need --http-use-ssl (or --http-use-ssl-mutual)")
    if args.http_restricted_api:
        settings["http_restrictions"] = Restrictions.parse(args.http_restricted_api)
    return settings


def _security_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.grpc_use_ssl or args.grpc_use_ssl_mutual:
        if not (args.grpc_server_cert and args.grpc_server_key):
            raise ConfigError("--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key")
        overrides["tls"] = ServerTls(
            args.grpc_server_cert,
            args.grpc_server_key,
            root_cert=args.grpc_root_cert,
            mutual=args.grpc_use_ssl_mutual,
        )
    elif args.grpc_server_cert or args.grpc_server_key or args.grpc_root_cert:
        raise ConfigError("certificate flags need --grpc-use-ssl (or --grpc-use-ssl-mutual)")
    if args.grpc_restricted_protocol:
        overrides["restrictions"] = Restrictions.parse(args.grpc_restricted_protocol)
    if args.metrics_address is not None:
        overrides["metrics_host"] = args.metrics_address
    if args.trace_config:
        overrides["trace"] = TraceConfig.parse(args.trace_config)
    return overrides


def _add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """tritonserver's flag names, for --model-repository."""
    group = parser.add_argument_group("inference service (with --model-repository)")
    group.add_argument("--grpc-port", type=int, default=None, help="default 8001; 0 picks one")
    group.add_argument(
        "--http-port", type=int, default=None, help="KServe v2 REST; default 8000; 0 picks one"
    )
    group.add_argument("--grpc-address", default=None, metavar="HOST", help="default: --host")
    group.add_argument("--http-address", default=None, metavar="HOST", help="default: --host")
    for protocol, what in (
        ("grpc", "gRPC (asyncinfer always serves it: false is refused)"),
        ("http", "HTTP/REST on --http-port"),
        ("metrics", "Prometheus metrics on --metrics-port (8002 by default)"),
    ):
        group.add_argument(
            f"--allow-{protocol}",
            type=_flag_bool,
            nargs="?",
            const=True,
            default=True,
            metavar="BOOL",
            help=f"serve {what} (default true)",
        )
    group.add_argument(
        "--exit-timeout-secs",
        type=float,
        default=None,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long calls in flight may take to finish (tritonserver's "
        "name for --grace; default 30)",
    )
    group.add_argument("--model-control-mode", choices=("none", "explicit", "poll"), default="none")
    group.add_argument(
        "--load-model",
        action="append",
        default=[],
        metavar="NAME",
        help="with explicit control: load NAME at start (repeatable; '*' loads all)",
    )
    group.add_argument("--repository-poll-secs", type=float, default=15.0)
    group.add_argument(
        "--disable-auto-complete-config",
        action="store_true",
        help="use model configs exactly as written: no inputs, outputs, batching or backend "
        "filled in from the model files (as tritonserver's flag)",
    )
    group.add_argument(
        "--allow-client-shm",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="let clients register and unregister system (and, with CUDA, CUDA) shared-memory "
        "regions (default false, as tritonserver's: they are refused with UNIMPLEMENTED)",
    )
    group.add_argument(
        "--strict-readiness",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="ServerReady (and gRPC health) is true only while every model asked to load is "
        "ready (default true, as tritonserver's); false: whenever the server has started",
    )
    group.add_argument(
        "--metrics-config",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="histogram_latencies=true, histogram_buckets=MS,MS,..., counter_latencies=false "
        "(repeatable)",
    )


def _inference_factory(args: argparse.Namespace) -> Callable[[], Server]:
    if args.port is not None:
        raise ConfigError("with --model-repository, give the port as --grpc-port")
    for protocol, name in (("grpc", "gRPC"), ("http", "HTTP")):
        given = [
            f"--{protocol}-{what}"
            for what in ("port", "address")
            if getattr(args, f"{protocol}_{what}")
        ]
        if given and not getattr(args, f"allow_{protocol}"):
            raise ConfigError(
                f"{' and '.join(given)} {'serve' if len(given) > 1 else 'serves'} {name}, "
                f"which --allow-{protocol} false turns off: drop one or the other"
            )
    host = args.grpc_address or args.host or "127.0.0.1"
    metrics_port = args.metrics_port if args.metrics_port is not None else 8002
    factory = functools.partial(
        build_server,
        args.model_repository,
        host=host,
        grpc_port=(8001 if args.grpc_port is None else args.grpc_port) if args.allow_grpc else None,
        model_control_mode=args.model_control_mode,
        load_models=tuple(args.load_model),
        allow_client_shm=args.allow_client_shm,
        strict_readiness=args.strict_readiness,
        workers=args.workers or 1,
        poll_seconds=args.repository_poll_secs,
        auto_complete=not args.disable_auto_complete_config,
        metrics_port=metrics_port if args.allow_metrics else None,
        metrics_config=MetricsConfig.parse(args.metrics_config),
        http_port=(8000 if args.http_port is None else args.http_port) if args.allow_http else None,
        http_host=args.http_address or args.host or "127.0.0.1",
        **_http_security(args),
    )
    factory()  # fail here, in the parent, on a bad combination of flags
    return factory


def _run_serve(args: argparse.Namespace) -> int:
    _refuse_unsupported(args)
    logs.configure(
        verbose=args.log_verbose,
        format=args.log_format,
        file=args.log_file,
        info=args.log_info,
        warning=args.log_warning,
        error=args.log_error,
    )
    security = _security_overrides(args)
    if args.exit_timeout_secs is not None:
        if args.grace is not None:
            raise ConfigError("give --exit-timeout-secs or --grace, not both (they are one)")
        args.grace = args.exit_timeout_secs
    if args.model_repository is not None:
        overrides = {
            key: value
            for key in ("grace", "liveness_timeout", "max_receive_message_bytes")
            if (value := getattr(args, key)) is not None
        }
        if args.grpc_address and args.metrics_address is None:
            security["metrics_host"] = args.host or "127.0.0.1"  # --host, not --grpc-address
        factory = functools.partial(_configured, _inference_factory(args), overrides | security)
        return serve(factory)
    inference_only = (
        "grpc_port", "http_port", "grpc_address", "http_address", "allow_client_shm",
        "load_model", "http_use_ssl", "http_use_ssl_mutual", "http_server_cert",
        "http_server_key", "http_root_cert", "http_restricted_api", "metrics_config",
    )  # fmt: skip
    refused = [f"--allow-{p} false" for p in ("grpc", "http") if not getattr(args, f"allow_{p}")]
    if refused:
        raise ConfigError(f"{', '.join(refused)} needs --model-repository")
    if not args.allow_metrics:
        args.metrics_port = None
    used = [f"--{k.replace('_', '-')}" for k in inference_only if getattr(args, k)]
    if used or args.model_control_mode != "none":
        raise ConfigError(f"{', '.join(used) or '--model-control-mode'} needs --model-repository")
    overrides = {
        key: value
        for key in (
            "host",
            "port",
            "workers",
            "reuse_port",
            "grace",
            "metrics_port",
            "liveness_timeout",
            "max_receive_message_bytes",
        )
        if (value := getattr(args, key)) is not None
    } | security
    return serve(functools.partial(_configured, _load_factory(args.app), overrides))


def _load_factory(spec: str) -> Callable[[], Server]:
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ConfigError(f"--app takes MODULE:FACTORY, e.g. myservice:build; got {spec!r}")
    sys.path.insert(0, ".")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load --app {spec}: {exc}") from exc
    if not callable(factory):
        raise ConfigError(f"--app {spec} is not callable")
    return factory  # type: ignore[no-any-return]


def _configured(factory: Callable[[], Server], overrides: dict[str, Any]) -> Server:
    """The app's server with command-line overrides applied (module level: workers pickle it)."""
    server = factory()
    if not isinstance(server, Server):
        raise ConfigError(f"the --app factory returned {server!r}, not a Server")
    if overrides:
        if overrides.get("workers", 1) > 1 and "reuse_port" not in overrides:
            overrides = {**overrides, "reuse_port": True}  # --workers N implies sharing the port
        server.config = dataclasses.replace(server.config, **overrides)
    return server


def _add_health(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", help="HOST:PORT (gRPC health service) or http[s]://HOST:PORT (HTTP readiness)"
    )
    parser.add_argument(
        "--service",
        default="",
        help='a gRPC service name, or over HTTP a model name; "" is the whole server',
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    parser.set_defaults(run=_run_health)


def _run_health(args: argparse.Namespace) -> int:
    """Exit 0 when the server reports SERVING; 1 for any other status or no answer."""
    status = check_health(args.target, args.service, timeout=args.timeout)
    print(f"{args.target} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


def _add_load(parser: argparse.ArgumentParser, mode: str) -> None:
    parser.add_argument(
        "target", help="HOST:PORT, several comma-separated (round-robin), or dns:///NAME:PORT"
    )
    parser.add_argument("method", help="/package.Service/Method")
    parser.add_argument(
        "--request", default="{}", help="request as JSON (a list for client streams)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--count", type=int, default=None, help="stop after this many calls")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline, seconds")
    parser.add_argument(
        "--codec",
        default="protobuf",
        help="how the method's messages are encoded: protobuf, flatbuffers, raw or MODULE:NAME",
    )
    parser.add_argument("--json", default=None, help="write the result as JSON to this file")
    group = parser.add_argument_group("TLS (perf_analyzer's flag names)")
    group.add_argument("--ssl-grpc-use-ssl", action="store_true", help="connect over TLS")
    group.add_argument(
        "--ssl-grpc-root-certifications-file",
        default=None,
        metavar="PEM",
        help="CA to trust (default: the system's)",
    )
    group.add_argument("--ssl-grpc-private-key-file", default=None, metavar="PEM")
    group.add_argument("--ssl-grpc-certificate-chain-file", default=None, metavar="PEM")
    if mode == "async":
        parser.add_argument("--concurrency", type=int, default=16)
        parser.add_argument("--max-in-flight", type=int, default=None)
    if mode == "siege":
        parser.add_argument("--rate", type=float, required=True, help="calls/s (start rate)")
        parser.add_argument("--shape", choices=("constant", "linear", "cyclic"), default="constant")
        parser.add_argument(
            "--rate-end", type=float, default=None, help="linear: end; cyclic: high"
        )
        parser.add_argument(
            "--period", type=float, default=None, help="cyclic period / linear ramp"
        )
        parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.set_defaults(run=_run_load)


def parse_request(method: Method, text: str) -> Any:
    """A request of ``method`` from JSON, made by its codec; a JSON list makes a client stream."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--request is not JSON: {exc}") from None
    items = value if isinstance(value, list) else [value]
    try:
        messages = [method.request_codec.from_json(item) for item in items]
    except UsageError as exc:
        raise UsageError(
            f"--request does not fit {method.request_codec.message.full_name}: {exc}"
        ) from None
    return messages if method.client_streaming or isinstance(value, list) else messages[0]


def rate_schedule(args: argparse.Namespace) -> Rate:
    if args.shape == "constant":
        return Constant(args.rate)
    if args.rate_end is None:
        raise UsageError(f"--shape {args.shape} needs --rate-end")
    if args.shape == "linear":
        return Linear(args.rate, args.rate_end, args.period or args.duration)
    return Cyclic(args.rate, args.rate_end, args.period or args.duration / 2)


def client_tls(args: argparse.Namespace) -> ClientTls | None:
    """The load clients' TLS from the --ssl-grpc-* flags; None: plaintext."""
    files = (
        args.ssl_grpc_root_certifications_file,
        args.ssl_grpc_private_key_file,
        args.ssl_grpc_certificate_chain_file,
    )
    if not args.ssl_grpc_use_ssl:
        if any(files):
            raise UsageError("the --ssl-grpc-*-file flags need --ssl-grpc-use-ssl")
        return None
    root, key, cert = files
    return ClientTls(root_cert=root, cert=cert, key=key)


def _run_load(args: argparse.Namespace) -> int:
    if is_http_url(args.target):
        return _run_http_load(args)
    tls = client_tls(args)
    method = resolve_method(args.target, args.method, tls=tls).with_codec(codec_named(args.codec))
    request = parse_request(method, args.request)
    if args.command == "sync":
        with SyncClient(args.target, method, timeout=args.timeout, tls=tls) as client:
            report = client.run(request, duration=args.duration, count=args.count)
        print(report.line())
        result: dict[str, Any] = report.to_dict()
    else:
        result = run_loop(_run_async_load(args, method, request))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
    return 0


def _run_http_load(args: argparse.Namespace) -> int:
    """`async` and `siege` against an HTTP endpoint: METHOD is the path (POSTed with --request
    as the JSON body), e.g. http://127.0.0.1:8000 /v2/models/simple/infer."""
    if args.command == "sync":
        raise UsageError("sync drives gRPC methods; for HTTP use `async --concurrency 1`")
    if not args.method.startswith("/"):
        raise UsageError(
            f"over HTTP, METHOD is a path such as /v2/models/NAME/infer, not {args.method!r}"
        )
    try:
        json.loads(args.request)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--request is not JSON: {exc}") from None
    result = run_loop(_run_async_load(args, None, args.request.encode()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
    return 0


def _load_client(args: argparse.Namespace, method: Method | None, **options: Any) -> Any:
    """The async load client of the target: HttpClient for an http(s):// URL, else gRPC's."""
    tls = client_tls(args)
    if method is None:
        return HttpClient(
            args.target.rstrip("/") + args.method, timeout=args.timeout, tls=tls, **options
        )
    return AsyncClient(args.target, method, timeout=args.timeout, tls=tls, **options)


async def _run_async_load(args: argparse.Namespace, method: Method | None, request: Any) -> Any:
    if args.command == "async":
        async with _load_client(args, method, max_in_flight=args.max_in_flight) as client:
            report = await client.run(
                request, concurrency=args.concurrency, duration=args.duration, count=args.count
            )
        print(report.line())
        return report.to_dict()
    async with _load_client(args, method) as client:
        siege = Siege(
            client, rate_schedule(args), duration=args.duration, max_in_flight=args.max_in_flight
        )
        result = await siege.run(request)
    print(result.report.line() + f" throttled={result.throttled}")
    return result.to_dict()


if __name__ == "__main__":
    raise SystemExit(main())
