# Stubs for the part of flask-smorest (0.45+) that cellchain uses. flask-smorest ships no
# py.typed and PyPI has no stubs for it; without these every decorated view is untyped.
#
# The decorators register the view and its documentation and hand back a function called as
# Flask calls the view, so they are typed to keep the view's own signature (as Flask's route
# decorators are). ``response`` keeps the parameters and returns what Flask sends: the view
# returns whatever its schema dumps, the wrapper a Response. ``arguments`` appends the parsed
# arguments to the positional ones (after ``self`` on a MethodView), which no ParamSpec can
# say, so it keeps the signature as written. Only names cellchain uses are here: a new one
# is an error until added.
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from os import PathLike
from typing import Any, ParamSpec, TypeVar

import flask
import marshmallow as ma
from apispec import APISpec
from flask.typing import ResponseReturnValue, RouteCallable
from flask.views import View

_F = TypeVar("_F", bound=Callable[..., Any])
_P = ParamSpec("_P")
#: what ``route`` registers: a view function, or a MethodView class (made a view by as_view)
_Route = TypeVar("_Route", bound=RouteCallable | type[View])

#: a marshmallow schema class or instance, as the decorators accept
_Schema = type[ma.Schema] | ma.Schema
_Status = int | str | HTTPStatus

class Blueprint(flask.Blueprint):
    description: str
    def __init__(
        self,
        name: str,
        import_name: str,
        static_folder: str | PathLike[str] | None = None,
        static_url_path: str | None = None,
        template_folder: str | PathLike[str] | None = None,
        url_prefix: str | None = None,
        subdomain: str | None = None,
        url_defaults: dict[str, Any] | None = None,
        root_path: str | None = None,
        cli_group: str | None = ...,
        *,
        description: str = "",
    ) -> None: ...
    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: RouteCallable | type[View] | None = None,
        provide_automatic_options: bool | None = None,
        *,
        parameters: Sequence[Mapping[str, Any] | str] | None = None,
        tags: Sequence[str] | None = None,
        **options: Any,
    ) -> None: ...
    def route(
        self,
        rule: str,
        *,
        parameters: Sequence[Mapping[str, Any] | str] | None = None,
        tags: Sequence[str] | None = None,
        **options: Any,
    ) -> Callable[[_Route], _Route]: ...
    def arguments(
        self,
        schema: _Schema,
        *,
        location: str = "json",
        content_type: str | None = None,
        required: bool = True,
        description: str | None = None,
        example: Any = None,
        examples: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Callable[[_F], _F]: ...
    def response(
        self,
        status_code: _Status,
        schema: _Schema | str | Mapping[str, Any] | None = None,
        *,
        content_type: str | None = None,
        description: str | None = None,
        example: Any = None,
        examples: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[_P, Any]], Callable[_P, ResponseReturnValue]]: ...
    def alt_response(
        self,
        status_code: _Status,
        response: str | None = None,
        *,
        schema: _Schema | str | Mapping[str, Any] | None = None,
        content_type: str | None = None,
        description: str | None = None,
        example: Any = None,
        examples: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        success: bool = False,
    ) -> Callable[[_F], _F]: ...
    def paginate(
        self,
        pager: type[Any] | None = None,
        *,
        page: int | None = None,
        page_size: int | None = None,
        max_page_size: int | None = None,
    ) -> Callable[[_F], _F]: ...
    @staticmethod
    def doc(**kwargs: Any) -> Callable[[_F], _F]: ...

class Api:
    #: schema of error responses; a class attribute the application may replace
    ERROR_SCHEMA: type[ma.Schema]
    #: the OpenAPI document being built; set by init_app (None before it)
    spec: APISpec
    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        spec_kwargs: Mapping[str, Any] | None = None,
        config_prefix: str = "",
    ) -> None: ...
    def init_app(
        self, app: flask.Flask, *, spec_kwargs: Mapping[str, Any] | None = None
    ) -> None: ...
    def register_converter(
        self, converter: type[Any], func: Callable[[Any], dict[str, Any]]
    ) -> None: ...
    def register_blueprint(
        self,
        blp: Blueprint,
        *,
        parameters: Sequence[Mapping[str, Any] | str] | None = None,
        **options: Any,
    ) -> None: ...
