"""Binds the extensions, blueprints and handlers to an app (called by ``create_app``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, g

from cellchain.core import transactions
from cellchain.extensions import api, csrf, db, login_manager, migrate
from cellchain.resources import resource_path


def import_models() -> None:
    """Import every package's tables so that the metadata (and Alembic) sees them all."""
    from cellchain.chain import models as chain_models  # noqa: F401
    from cellchain.clinic import models as clinic_models  # noqa: F401
    from cellchain.core import models as core_models  # noqa: F401
    from cellchain.donors import models as donors_models  # noqa: F401
    from cellchain.dosing import models as dosing_models  # noqa: F401
    from cellchain.labels import models as labels_models  # noqa: F401
    from cellchain.manufacturing import models as manufacturing_models  # noqa: F401
    from cellchain.notifications import models as notifications_models  # noqa: F401
    from cellchain.quality import models as quality_models  # noqa: F401
    from cellchain.sites import models as sites_models  # noqa: F401
    from cellchain.traceability import models as traceability_models  # noqa: F401
    from cellchain.trial_data import models as trial_data_models  # noqa: F401


def pass_site_zone_to_schemas(app: Flask) -> None:
    """Every request loads its input with the site's time zone (``core.schemas.SITE_ZONE``):
    the interface hands the zone to the schemas, which never read the app themselves."""
    from cellchain.core.schemas import SITE_ZONE
    from cellchain.http import site_zone

    @app.before_request
    def set_site_zone() -> None:
        g.site_zone_token = SITE_ZONE.set(site_zone())

    @app.teardown_request
    def reset_site_zone(_error: BaseException | None) -> None:
        token = g.pop("site_zone_token", None)
        if token is not None:
            SITE_ZONE.reset(token)


def apply_sites(app: Flask) -> None:
    """Per request: a clinician's or investigator's queries see only their sites' patients
    (``sites.scope``), and a monitor posts nothing and reads no person's name
    (``sites.monitor``). docs/sites.md."""
    from flask import request
    from flask_login import current_user

    from cellchain.core.roles import CLINIC_STAFF
    from cellchain.errors import PermissionDenied
    from cellchain.sites import monitor, scope
    from cellchain.sites.service import sites_of, visible_site_ids

    scope.install()

    @app.before_request
    def restrict_to_sites() -> None:
        user = current_user if current_user and current_user.is_authenticated else None
        if user is None:
            return
        roles = frozenset(user.roles)
        if (
            monitor.is_monitor(roles)
            and request.method not in monitor.SAFE_METHODS
            and not monitor.may_post(request.endpoint)
        ):
            raise PermissionDenied(_monitor_refusal())
        # the user's sites, read once per request (the zone they read in comes from them too)
        g.user_sites = sites_of(db.session, user) if roles & CLINIC_STAFF else []
        visible = visible_site_ids(db.session, user, g.user_sites)
        g.visible_sites_token = scope.VISIBLE_SITES.set(visible)
        g.pseudonymise = monitor.is_monitor(roles)

    # a bearer request whose view authenticates the token itself (``http.bearer_read``: the
    # scan) had no user when the hook ran: ``web/security`` runs it again once authenticated
    app.extensions["cellchain.restrict_to_sites"] = restrict_to_sites

    @app.after_request
    def hide_names(response: Any) -> Any:
        if not g.get("pseudonymise") or response.mimetype in monitor.STATIC_TYPES:
            return response
        if response.mimetype not in monitor.TEXT_TYPES | monitor.PLAIN_TYPES:
            if response.status_code >= 300:  # a file (PDF, image, ZIP) is not rewritten
                return response
            from flask import make_response

            from cellchain.web.errors import handle_domain_error

            return make_response(handle_domain_error(PermissionDenied(_monitor_file_refusal())))
        names = monitor.names_to_hide(db.session)
        body = response.get_data(as_text=True)  # a streamed text answer is read whole
        json_body = response.mimetype in monitor.TEXT_TYPES - {"text/html"}
        logins = monitor.usernames(db.session)
        response.set_data(
            monitor.pseudonymise(
                body,
                names,
                json_body=json_body,
                logins=logins,
                values=monitor.withheld(db.session),
            )
        )
        return response

    @app.teardown_request
    def reset_sites(_error: BaseException | None) -> None:
        token = g.pop("visible_sites_token", None)
        if token is not None:
            scope.VISIBLE_SITES.reset(token)


def _monitor_refusal() -> str:
    from cellchain.core.i18n import _

    return _("A monitor reads the records and changes nothing.")


def _monitor_file_refusal() -> str:
    from cellchain.core.i18n import _

    return _(
        "A monitor reads records on the pages and through the API: files and PDFs carry "
        "people's names and are not given to a monitor."
    )


def wire(app: Flask) -> None:
    """Everything ``create_app`` does after the configuration is known."""
    import_models()
    from cellchain.admin import api as admin_api
    from cellchain.admin import views as admin_views
    from cellchain.chain import api as chain_api
    from cellchain.chain import views as chain_views
    from cellchain.clinic.bedside import api as bedside_api
    from cellchain.clinic.bedside import infusions as bedside_infusions
    from cellchain.clinic.bedside import queue_views  # noqa: F401 (its routes)
    from cellchain.clinic.bedside import record as bedside_record
    from cellchain.clinic.bedside import views as bedside_views
    from cellchain.clinic.endpoints import api as endpoints_api
    from cellchain.clinic.endpoints import views as endpoints_views
    from cellchain.clinic.follow_up import api as follow_up_api
    from cellchain.clinic.follow_up import views as follow_up_views
    from cellchain.clinic.shipments import api as shipments_api
    from cellchain.clinic.shipments import views as shipment_views
    from cellchain.donors import api as donors_api
    from cellchain.donors import views as donors_views
    from cellchain.donors.panels import api as panels_api
    from cellchain.donors.panels import views as panels_views
    from cellchain.dosing import api as dosing_api
    from cellchain.dosing import views as dosing_views
    from cellchain.dosing.rechecks import api as rechecks_api
    from cellchain.dosing.rechecks import views as rechecks_views
    from cellchain.http import IntegerConverter, integer_converter_schema, refuse_unreadable_request
    from cellchain.labels import api as labels_api
    from cellchain.labels import outstanding_views  # noqa: F401 (its routes)
    from cellchain.labels import views as labels_views
    from cellchain.labels.template_documents import api as label_templates_api
    from cellchain.labels.template_documents import views as label_templates_views
    from cellchain.manufacturing import pages as manufacturing_pages
    from cellchain.manufacturing import vessel_api, vessel_views
    from cellchain.manufacturing.deviations import api as deviations_api
    from cellchain.manufacturing.deviations import views as deviations_views  # noqa: F401 (its routes)
    from cellchain.manufacturing.equipment import api as equipment_api
    from cellchain.manufacturing.equipment import views as equipment_views
    from cellchain.manufacturing.processing import api as manufacturing_api
    from cellchain.manufacturing.processing import views as manufacturing_views
    from cellchain.manufacturing.stock import api as stock_api
    from cellchain.manufacturing.stock import views as stock_views
    from cellchain.manufacturing.storage import api as storage_api
    from cellchain.manufacturing.storage import views as storage_views  # noqa: F401 (its routes)
    from cellchain.notifications import api as notifications_api
    from cellchain.notifications import views as notifications_views
    from cellchain.notifications.commands import install_mail
    from cellchain.quality import api as quality_api
    from cellchain.quality import views as quality_views
    from cellchain.scanning import api as scanning_api
    from cellchain.sites import api as sites_api
    from cellchain.sites import views as sites_views
    from cellchain.traceability import pages as traceability_pages
    from cellchain.traceability.coi import api as coi_api
    from cellchain.traceability.coi import views as coi_views
    from cellchain.traceability.fhir import api as fhir_api
    from cellchain.traceability.recalls import api as recalls_api
    from cellchain.traceability.recalls import views as recalls_views  # noqa: F401 (its routes)
    from cellchain.traceability.trace import api as trace_api
    from cellchain.traceability.trace import views as trace_views  # noqa: F401 (its routes)
    from cellchain.trial_data import api as trial_data_api
    from cellchain.trial_data import views as trial_data_views
    from cellchain.web import errors, first_login, security
    from cellchain.web import views as web_views
    from cellchain.web.docs import ProblemResponses, docs_static, protect_smorest_docs
    from cellchain.web.errors import ProblemSchema
    from cellchain.web.language import init_language
    from cellchain.worklists import api as worklists_api

    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(
        minutes=app.config["IDLE_TIMEOUT_MINUTES"]
    )
    transactions.install()
    if app.config.get("TRUSTED_PROXIES"):  # the client address behind reverse proxies
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)  # type: ignore[method-assign]
    # a URL's id beyond the database's integer range is a 404 at routing (http.IntegerConverter)
    app.url_map.converters["int"] = IntegerConverter
    # first of the request hooks: the request's language (from the session and the browser,
    # no database read), so that every refusal after it, the 413's page included, reads in it
    init_language(app)
    # then a body too large or unreadable is refused before any other hook
    app.before_request(refuse_unreadable_request)
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(resource_path("migrations")), render_as_batch=True, compare_type=True
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    api.ERROR_SCHEMA = ProblemSchema
    # every operation's problem+json answers are documented by one plugin (web/docs.py)
    api.init_app(app, spec_kwargs={"extra_plugins": [ProblemResponses()]})
    api.register_converter(IntegerConverter, integer_converter_schema)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "cellchain API token"}
    )
    api.spec.options["security"] = [{"bearerAuth": []}]

    security.init_security(app)
    # after authentication: an administrator-set password is changed before anything else
    app.before_request(first_login.require_password_change)
    errors.init_error_handlers(app)
    apply_sites(app)  # before the zone: a clinic user's zone is their site's
    pass_site_zone_to_schemas(app)

    app.register_blueprint(web_views.blueprint)
    app.register_blueprint(admin_views.blueprint)
    app.register_blueprint(chain_views.blueprint)
    app.register_blueprint(donors_views.blueprint)
    app.register_blueprint(panels_views.blueprint)
    app.register_blueprint(manufacturing_views.blueprint)
    app.register_blueprint(stock_views.blueprint)
    app.register_blueprint(manufacturing_pages.storage_pages)  # storage_ and deviations_views
    app.register_blueprint(vessel_views.blueprint)
    app.register_blueprint(equipment_views.blueprint)
    app.register_blueprint(quality_views.blueprint)
    app.register_blueprint(dosing_views.blueprint)
    # the clinic's part of the patient and dose pages (dosing does not import the clinic)
    dosing_views.show_clinic(
        app, dosing_views.ClinicReads(bedside_infusions.infusions_of, bedside_record.dose_at_clinic)
    )
    app.register_blueprint(rechecks_views.blueprint)
    app.register_blueprint(labels_views.blueprint)
    app.register_blueprint(label_templates_views.blueprint)
    app.register_blueprint(follow_up_views.blueprint)
    app.register_blueprint(endpoints_views.blueprint)
    app.register_blueprint(shipment_views.blueprint)
    app.register_blueprint(bedside_views.blueprint)
    app.register_blueprint(coi_views.blueprint)
    app.register_blueprint(traceability_pages.blueprint)  # the routes of trace_ and recalls_views
    app.register_blueprint(trial_data_views.blueprint)
    app.register_blueprint(notifications_views.blueprint)
    app.register_blueprint(sites_views.blueprint)
    app.register_blueprint(docs_static)
    for blueprint in (
        *admin_api.blueprints,
        *chain_api.blueprints,
        *donors_api.blueprints,
        *panels_api.blueprints,
        *manufacturing_api.blueprints,
        *stock_api.blueprints,
        *storage_api.blueprints,
        *vessel_api.blueprints,
        *deviations_api.blueprints,
        *equipment_api.blueprints,
        *quality_api.blueprints,
        *dosing_api.blueprints,
        *rechecks_api.blueprints,
        *labels_api.blueprints,
        *label_templates_api.blueprints,
        *follow_up_api.blueprints,
        *endpoints_api.blueprints,
        *shipments_api.blueprints,
        *bedside_api.blueprints,
        *fhir_api.blueprints,
        *coi_api.blueprints,
        *trace_api.blueprints,
        *recalls_api.blueprints,
        *trial_data_api.blueprints,
        *scanning_api.blueprints,
        *worklists_api.blueprints,
        *notifications_api.blueprints,
        *sites_api.blueprints,
    ):
        api.register_blueprint(blueprint)
    protect_smorest_docs(app)
    web_views.install_template_helpers(app)
    install_mail()  # urgent notification e-mails right after their commit
