"""A plugin used by the account tests (tests/test_accounts_*.py): anti-fraud
verdicts the test chooses, blocks in the form slots, a notification
channel that records what it is told, and a registration hook that may
refuse."""
from kameng import hookimpl
from kameng.errors import APIError
from kameng.types import PluginMeta, RiskVerdict, StorefrontBlock

PLUGIN = PluginMeta(name="Account test plugin", description="used by kameng's account tests",
                    author="kameng tests", category="other")

#: action → the RiskVerdict kameng_risk_check answers (no entry: allow)
VERDICTS = {}
#: (action, subject, the posted "captcha" field) of every kameng_risk_check call
CHECKS = []
#: slot → the HTML kameng_storefront_blocks puts there
BLOCKS = {}
#: (event, data) of every kameng_notify call
NOTES = []
#: users kameng_user_registered was called with: (id, email, phone)
REGISTERED = []
#: when set, kameng_user_registered refuses with this APIError
REFUSE = []


def reset():
    for things in (VERDICTS, CHECKS, BLOCKS, NOTES, REGISTERED, REFUSE):
        things.clear()


@hookimpl
def kameng_risk_check(request, action, subject):
    CHECKS.append((action, dict(subject), request.POST.get("captcha")))
    return VERDICTS.get(action)


@hookimpl
def kameng_storefront_blocks(request, slot):
    html = BLOCKS.get(slot)
    return [StorefrontBlock(slot, html)] if html else None


@hookimpl
def kameng_notify(request, event, data):
    NOTES.append((event, data))


@hookimpl
def kameng_user_registered(request, user):
    REGISTERED.append((user.id, user.email, user.phone))
    if REFUSE:
        raise REFUSE[0]


def deny(action, code="rate_limited", message="", retry_after=30):
    VERDICTS[action] = RiskVerdict(action="deny", code=code, reasons=("test",), user_message=message,
                                   retry_after=retry_after)


def refuse_registration(message="Registrations are closed for a moment."):
    REFUSE[:] = [APIError(403, "blocked", message)]
