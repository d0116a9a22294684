"""kameng: a self-hosted shop for virtual goods.

Plugins import :data:`hookimpl` from here::

    from kameng import hookimpl
"""
import os
import warnings

import pluggy

# Pyramid still imports pkg_resources (setuptools is pinned below 82 for it);
# the deprecation notice is for Pyramid's maintainers, not for merchants.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"

#: The plugin API version; plugins declare which versions they work with
#: (``PluginMeta(kameng_api=">=1,<2")``).
API_VERSION = "1.0"

hookimpl = pluggy.HookimplMarker("kameng")

# In a source checkout (or an editable install) the top-level ``migrations/``
# and ``themes/`` folders are the ``kameng.migrations`` and ``kameng.themes``
# packages; an installed wheel carries them inside ``kameng/`` itself.
_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
if not os.path.isdir(os.path.join(_here, "migrations")) and os.path.isfile(
    os.path.join(_root, "migrations", "env.py")
):
    __path__.append(_root)  # type: ignore[name-defined]


def main(global_config, **settings):
    """PasteDeploy app factory (``use = egg:kameng``)."""
    from kameng.config import configure

    return configure(settings).make_wsgi_app()
