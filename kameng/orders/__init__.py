"""Orders: checkout, the order lifecycle, delivery and refunds.

:mod:`~kameng.orders.states` holds the state machine, :mod:`~kameng.orders.pricing`
the server-side price pipeline, :mod:`~kameng.orders.checkout` order creation,
:mod:`~kameng.orders.service` payment, delivery, expiry and refunds.
"""
