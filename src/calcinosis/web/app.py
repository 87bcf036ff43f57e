"""The FastAPI application: pages, study/comparison JSON, slice PNGs. Read-only.

Every route takes a study or comparison *key* and looks it up in the
:class:`~calcinosis.web.catalog.Catalog`; unknown keys (including anything with
``..``, slashes or absolute paths) are a 404. Only GET exists (any other method,
HEAD too, is a 405). With a token, every request must carry it (``?token=``,
``Authorization: Bearer`` or the cookie set after the first good ``?token=``).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

from calcinosis.errors import InputError
from calcinosis.web.catalog import Catalog, StudySource
from calcinosis.web.render import ByteLRU, Plane, Preset, image_png, label_png, plane_size
from calcinosis.web.studydata import LoadedStudy, StudyHandle, StudyStore

logger = logging.getLogger(__name__)

TOKEN_COOKIE = "calcinosis_token"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".json": "application/json"}
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
REPORT_CSP = ("sandbox allow-scripts; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
              "script-src 'unsafe-inline'")


@dataclass(frozen=True)
class ServerSettings:
    """How the app behaves.

    Parameters
    ----------
    token : str or None
        Access token every request must carry; None: no token.
    allowed_hosts : tuple of str or None
        Host headers accepted (guards a loopback server against DNS rebinding); None: any.
    max_studies : int
        Studies kept loaded in memory (each holds its CT and label map).
    cache_mb : int
        Size of the rendered-slice cache in MiB.
    """

    token: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    max_studies: int = 4
    cache_mb: int = 256


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page assets shipped in the package, by file name (nothing else is served)."""
    folder = resources.files("calcinosis.web") / "static"
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in STATIC_TYPES:
            out[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return out


def create_app(catalog: Catalog, settings: ServerSettings = ServerSettings()):
    """A FastAPI app serving ``catalog``; see the module docstring for the rules."""
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="calcinosis viewer", docs_url=None, redoc_url=None, openapi_url=None)
    store = StudyStore(settings.max_studies)
    cache = ByteLRU(settings.cache_mb * 1024**2)
    static = _static_files()
    app.state.store, app.state.cache, app.state.catalog = store, cache, catalog
    app.router.add_event_handler("shutdown", store.close)

    if settings.allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD"):
            return JSONResponse({"detail": "read-only server: only GET"}, status_code=405)
        from_query = request.query_params.get("token")
        if settings.token is not None:
            given = from_query or request.cookies.get(TOKEN_COOKIE) or ""
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = given or auth[7:].strip()
            if not hmac.compare_digest(given.encode(), settings.token.encode()):
                return JSONResponse({"detail": "access token missing or wrong; open the URL printed by "
                                               "calcinosis serve"}, status_code=401)
        response = await call_next(request)
        if settings.token is not None and from_query:
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    def find_study(key: str) -> StudySource:
        source = catalog.study(key)
        if source is None:
            raise HTTPException(404, f"no finished study {key!r}")
        return source

    def handle(key: str) -> StudyHandle:
        return store.handle(find_study(key))

    def loaded(key: str) -> tuple[StudyHandle, LoadedStudy]:
        """The study's handle and its outlines; the handle's stamp keys its slices in the
        cache (a study redone on disk showed the old outlines from the cache)."""
        study = handle(key)
        try:
            return study, study.meta()
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None

    def page(name: str) -> Response:
        data, media = static[name]
        return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})

    # -- pages ----------------------------------------------------------------------------
    @app.get("/")
    def index_page():
        return page("index.html")

    @app.get("/study/{key}")
    def study_page(key: str):
        store.prefetch(find_study(key))  # the CT loads while the page and its script arrive
        return page("study.html")

    @app.get("/compare/{key}")
    def compare_page(key: str):
        cmp = catalog.comparison(key)
        if cmp is None:
            raise HTTPException(404, f"no comparison {key!r}")
        store.prefetch(cmp.baseline)
        store.prefetch(cmp.followup)
        return page("compare.html")

    @app.get("/static/{name}")
    def static_file(name: str):
        if name not in static:
            raise HTTPException(404, "no such file")
        data, media = static[name]
        return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})

    # -- data -----------------------------------------------------------------------------
    @app.get("/api/studies")
    def study_list():
        try:
            return {"studies": catalog.study_list(), "comparisons": catalog.comparison_list()}
        except InputError as exc:
            raise HTTPException(503, str(exc)) from None

    @app.get("/api/studies/{key}")
    def study_detail(key: str):
        source, study = loaded(key)
        # The page puts the version in its slice URLs: the browser keeps slices for 10 minutes,
        # and showed a redone study's old outlines under the same URL.
        return json_safe({**study.describe(), "version": stamp_version(source.stamp)})

    @app.get("/api/studies/{key}/prefetch", status_code=204)
    def study_prefetch(key: str):
        """Start loading the study (the list page asks on hover); changes nothing on disk."""
        store.prefetch(find_study(key))
        return Response(status_code=204)

    @app.get("/api/studies/{key}/image/{plane}/{index}.png")
    def image_slice(key: str, plane: Plane, index: int, preset: Preset = Preset.SOFT,
                    level: float | None = Query(None, ge=-2000, le=4000),
                    width: float | None = Query(None, gt=0, le=8000)):
        source, study = loaded(key)
        _check_index(study, plane, index)
        image = source.image()
        if image.view is None:
            raise HTTPException(404, f"no CT image for study {key!r}: {image.note}")
        lvl, wid = preset.level_width_hu
        lvl, wid = (level if level is not None else lvl), (width if width is not None else wid)
        data = cache.get_or_make((key, source.stamp, "image", plane.value, index, lvl, wid),
                                 lambda: image_png(image.view, plane, index, lvl, wid))
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})

    @app.get("/api/studies/{key}/labels/{plane}/{index}.png")
    def label_slice(key: str, plane: Plane, index: int):
        source, study = loaded(key)
        _check_index(study, plane, index)
        data = cache.get_or_make((key, source.stamp, "labels", plane.value, index),
                                 lambda: label_png(study.labels, plane, index))
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=600"})

    @app.get("/api/studies/{key}/report")
    def study_report(key: str):
        source = find_study(key)
        path = source.output_dir / "report.html" if source.output_dir else None
        if path is None or not path.is_file():
            raise HTTPException(404, f"study {key!r} has no report.html")
        return Response(path.read_bytes(), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": REPORT_CSP})

    @app.get("/api/comparisons/{key}")
    def comparison_detail(key: str):
        from calcinosis.web.compare_data import comparison_view

        cmp = catalog.comparison(key)
        if cmp is None:
            raise HTTPException(404, f"no comparison {key!r}")
        try:
            return comparison_view(cmp)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None

    return app


def _check_index(study: LoadedStudy, plane: Plane, index: int) -> None:
    n = plane_size(study.shape, plane)
    if not 0 <= index < n:
        from fastapi import HTTPException

        raise HTTPException(404, f"{plane.value} slice {index} is outside 0..{n - 1}")


def stamp_version(stamp: tuple) -> str:
    """A short text that changes when a study's files change (for the slice URLs)."""
    import hashlib

    return hashlib.sha256(repr(stamp).encode()).hexdigest()[:12]


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
