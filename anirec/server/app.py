"""The HTTP API and the web page over one :class:`~anirec.service.Service` (FastAPI).

Routes (OpenAPI at ``/docs``): ``GET /health``; ``GET /anime?q=TEXT&limit=N`` (title search for
autocomplete); ``GET /anime/{mal_id}``; ``GET /anime/{mal_id}/similar?k=N``; ``GET /options``
(types, genres, seasons and limits, for the page's filters); ``POST /recommend``; ``GET /``
(the page, plain files from ``static/``: no build step, no CDN).

The answer of ``POST /recommend`` is :meth:`Service.recommend`'s payload as is: the one the CLI
prints with ``--json``. The error contract: anything wrong with a request is a 4xx JSON
``{"error": "one line"}`` (422 for a value of the wrong type or out of its limits, 400 for a
body that is not JSON or a value the catalog does not know, 404 for an unknown anime, 413 for
a body over :data:`MAX_BODY_BYTES`), never a traceback; an unforeseen failure is a 500 with one
line, its traceback going to the server's log only. No request value is ever a path: a MAL
list travels as its XML text. CORS is off unless origins are given.
"""

from __future__ import annotations

import json
import logging
from importlib import resources

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AnirecError
from ..filters import Filters
from ..service import MAX_K, MAX_LIKES, MAX_QUERY_CHARS, MAX_RATINGS, MAX_SEARCH, LIMITS, NotFound, Request, Service
from ..mal_list import MAX_LIST_BYTES

MAX_BODY_BYTES = MAX_LIST_BYTES + (1 << 20)  # a whole MAL list plus room for the rest of a request
log = logging.getLogger("anirec.server")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RatingIn(_Strict):
    anime_id: int
    rating: int = Field(ge=1, le=10)


class FiltersIn(_Strict):
    types: list[str] = Field(default_factory=list, max_length=50, description='e.g. ["TV", "Movie"]')
    year_min: int | None = Field(None, ge=1900, le=2100)
    year_max: int | None = Field(None, ge=1900, le=2100)
    seasons: list[str] = Field(default_factory=list, max_length=4, description="Winter, Spring, Summer, Fall")
    genres: list[str] = Field(default_factory=list, max_length=50, description="the anime has every one")
    exclude_genres: list[str] = Field(default_factory=list, max_length=100, description="... and none of these")
    min_score: float | None = Field(None, ge=0, le=10, description="MAL score at least this")
    new_only: bool = Field(False, description="only anime nobody rated in the fitted data")
    include_adult: bool = Field(False, description="allow R+ and Rx")
    one_per_franchise: bool = True
    liked_franchises: bool = Field(False, description="allow a liked anime's own franchise")
    unstarted_sequels: bool = Field(True, description="allow sequels of franchises not started")


class RecommendIn(_Strict):
    likes: list[int | str] = Field(default_factory=list, max_length=MAX_LIKES, description="MAL_IDs or titles")
    ratings: list[RatingIn] = Field(default_factory=list, max_length=MAX_RATINGS)
    mal_list: str | None = Field(None, max_length=MAX_LIST_BYTES, description="the XML text of a MAL export")
    query: str | None = Field(None, max_length=MAX_QUERY_CHARS, description='free text, e.g. "dark psychological thriller"')
    k: int = Field(10, ge=1, le=MAX_K)
    filters: FiltersIn = Field(default_factory=FiltersIn)

    def request(self) -> Request:
        return Request(likes=list(self.likes), ratings=[(r.anime_id, r.rating) for r in self.ratings],
                       mal_list=self.mal_list, query=self.query, k=self.k,
                       filters=Filters(**self.filters.model_dump()))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return 400, f"request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})."
    loc = list(first.get("loc", ()))
    loc = [str(p) for p in (loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)]
    where = ".".join(loc) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {first.get('msg', 'invalid value')}{more}."


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 before the app reads them."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _error(413, f"request body over {self.limit // (1 << 20)} MB.")(scope, receive, send)
        if length is not None:
            return await self.app(scope, receive, send)
        # No length given (chunked): read up to the limit, then hand the app what was read.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _error(413, f"request body over {self.limit // (1 << 20)} MB.")(scope, receive, send)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


def create_app(service: Service, cors_origins: list[str] | tuple = ()) -> FastAPI:
    """The FastAPI application serving ``service`` (see the module doc)."""
    app = FastAPI(title="anirec", version="1", description=f"Anime recommendations from a fitted "
                  f"{service.fitted.method!r} recommender ({len(service.ids):,} anime).")
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _handlers(app)
    _routes(app, service)
    static = resources.files("anirec.server") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return _error(*_validation_message(exc))

    @app.exception_handler(NotFound)
    async def not_found(request, exc):
        return _error(404, str(exc))

    @app.exception_handler(AnirecError)
    async def user_error(request, exc):
        return _error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error(exc.status_code, f"{request.url.path}: {detail}")

    @app.exception_handler(Exception)
    async def bug(request, exc):  # a bug, not the request's fault: one line out, the traceback to the log
        log.exception("error answering %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details.")


def _routes(app: FastAPI, service: Service) -> None:
    # Handlers are ``async``: a request is a few milliseconds of Python holding the GIL, so the
    # threadpool FastAPI runs plain functions in bought no parallelism, only a thread hop per
    # request and, at concurrency 16, threads queueing for the GIL. What can take long (parsing
    # a MAL list, running a sentence model on a query, loading it on the first one) still goes
    # to the threadpool, so the event loop keeps answering meanwhile.
    @app.get("/health")
    async def health():
        fitted = service.fitted
        return {"status": "ok", "method": fitted.method, "n_items": len(service.ids), "model": fitted.model,
                "recommender": fitted.folder.name}

    @app.get("/options")
    async def options():
        f = service.view.fields
        return {"types": f.all_types(), "genres": f.all_genres(), "seasons": ["Winter", "Spring", "Summer", "Fall"],
                "years": [int(f.year[f.year == f.year].min()), int(f.year[f.year == f.year].max())],
                "limits": LIMITS, "text_query": service.recommender.uses_text}

    @app.get("/anime")
    async def search(q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="part of a title"),
                     limit: int = Query(10, ge=1, le=MAX_SEARCH)):
        return JSONResponse({"items": service.search(q, limit)})

    @app.get("/anime/{mal_id}")
    async def anime(mal_id: int):
        return JSONResponse(service.item(service.row(mal_id)))

    @app.get("/anime/{mal_id}/similar")
    async def similar(mal_id: int, k: int = Query(10, ge=1, le=MAX_K)):
        return JSONResponse(service.similar(mal_id, k))

    @app.post("/recommend")
    async def recommend(body: RecommendIn):
        request = body.request()
        if service.slow(request):
            return JSONResponse(await run_in_threadpool(service.recommend, request))
        return JSONResponse(service.recommend(request))
