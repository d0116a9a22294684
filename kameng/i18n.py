"""Translations: message ids are English, catalogs zh_CN and en.

The locale comes from ``?_LOCALE_=``, then the ``_LOCALE_`` cookie, then the
shop's default language (a setting in the admin), then ``zh_CN``.
"""
from pyramid.i18n import TranslationStringFactory

_ = TranslationStringFactory("kameng")

LANGUAGES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LOCALE = "zh_CN"


def locale_negotiator(request):
    # the query string only: reading request.params would parse the body
    # (a malformed multipart body would turn every answer into a 500)
    for candidate in (request.GET.get("_LOCALE_"), request.cookies.get("_LOCALE_")):
        if candidate in LANGUAGES:
            return candidate
    try:
        lang = request.shop.get("default_language")
    except Exception:  # no database yet (first start, broken config): still render
        lang = None
    return lang if lang in LANGUAGES else DEFAULT_LOCALE


def translate(request, message, mapping=None):
    if mapping is not None:
        message = _(message, mapping=mapping)
    return request.localizer.translate(message)


def includeme(config):
    config.add_translation_dirs("kameng:locale/")
    config.set_locale_negotiator(locale_negotiator)
