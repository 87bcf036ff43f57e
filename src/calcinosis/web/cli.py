"""CLI subcommand ``serve``: the web viewer."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket

from calcinosis.errors import InputError

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="web viewer: study list, CT slices with deposit outlines, comparisons",
        description="Serve a read-only web viewer. Give a batch registry (--db), one analyze output "
        "folder (--study, with --image for the CT it was made from: the folder does not hold the "
        "image) and/or a compare output folder (--compare). Binds to 127.0.0.1 unless --host says "
        "otherwise; --token makes every request carry an access token.")
    p.add_argument("--db", default=None, metavar="URL",
                   help="registry: SQLAlchemy URL, a registry.sqlite path or a batch OUTROOT folder")
    p.add_argument("--study", default=None, metavar="DIR", help="an analyze output folder")
    p.add_argument("--image", default=None, metavar="PATH",
                   help="the CT the --study folder was analysed from (without it: outlines only)")
    p.add_argument("--series", default=None, metavar="UID", help="DICOM SeriesInstanceUID of --image")
    p.add_argument("--compare", default=None, metavar="DIR", help="a compare output folder")
    p.add_argument("--baseline-image", default=None, metavar="PATH", help="the baseline CT of --compare")
    p.add_argument("--followup-image", default=None, metavar="PATH", help="the follow-up CT of --compare")
    p.add_argument("--baseline-study", default=None, metavar="DIR",
                   help="baseline analyze folder, when compare was given analyze folders")
    p.add_argument("--followup-study", default=None, metavar="DIR",
                   help="follow-up analyze folder, when compare was given analyze folders")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--token", nargs="?", const="random", default=None, metavar="TOKEN",
                   help="require this access token (without a value: a random one, printed)")
    p.add_argument("--max-studies", type=int, default=4, metavar="N",
                   help="studies kept in memory at once (default 4)")
    p.set_defaults(func=cmd_serve)


def build_catalog(args):
    """The :class:`~calcinosis.web.catalog.Catalog` the arguments describe."""
    from calcinosis.cohort.registry import Registry, database_url
    from calcinosis.web.catalog import Catalog, comparison_from_folder, study_from_folder

    if not (args.db or args.study or args.compare):
        raise InputError("nothing to serve; give --db (a batch registry), --study DIR or --compare DIR")
    if (args.image or args.series) and not args.study:
        raise InputError("--image and --series apply to --study")
    if (args.baseline_image or args.followup_image or args.baseline_study or args.followup_study) \
            and not args.compare:
        raise InputError("--baseline-image/--followup-image/--baseline-study/--followup-study apply to --compare")
    url = None
    if args.db:
        url = database_url(args.db)
        Registry.open(url, create=False).close()  # fail now, in one line, if it is not a registry
    studies, comparisons = {}, {}
    if args.study:
        src = study_from_folder(args.study, image=args.image, series_uid=args.series)
        studies[src.key] = src
    if args.compare:
        cmp = comparison_from_folder(args.compare, baseline_image=args.baseline_image,
                                     followup_image=args.followup_image, baseline_study=args.baseline_study,
                                     followup_study=args.followup_study)
        comparisons[cmp.key] = cmp
        studies[cmp.baseline.key] = cmp.baseline
        studies[cmp.followup.key] = cmp.followup
    return Catalog(registry_url=url, studies=studies, comparisons=comparisons)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    import uvicorn

    from calcinosis.web.app import ServerSettings, create_app

    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a TCP port (1-65535)")
    if args.max_studies < 1:
        raise InputError("--max-studies must be at least 1")
    catalog = build_catalog(args)
    sock = _bound_socket(args.host, args.port)  # a port in use or a bad host is said plainly
    token = secrets.token_urlsafe(24) if args.token == "random" else args.token
    loopback = is_loopback(args.host)
    if not loopback and token is None:
        logger.warning("serving on %s without --token: anyone who can reach this machine can see the studies",
                       args.host)
    hosts = ("127.0.0.1", "localhost", "[::1]", "::1") if loopback else None
    app = create_app(catalog, ServerSettings(token=token, allowed_hosts=hosts, max_studies=args.max_studies))
    for source in list(catalog.studies.values())[: args.max_studies]:
        app.state.store.prefetch(source)  # a single study is ready before the browser asks
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    query = f"?token={token}" if token else ""
    first = next(iter(catalog.studies), None) if args.study and not args.db else None
    path = f"/study/{first}" if first else ""
    print(f"calcinosis viewer: http://{shown}:{args.port}{path}{query}  (Ctrl-C to stop)", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` for the server; a port in use or a host that
    does not resolve is bad input (uvicorn printed its own error and exited with 3)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--host {host!r} is not a name or address of this machine ({exc}); "
                         "give e.g. 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host} port {port} ({exc.strerror or exc}); "
                         "choose another --port (or --host)") from None
    return sock
