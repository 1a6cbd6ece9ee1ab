from osmcloud_auth.billing_client import OrderAnswer
from osmcloud_auth.osmand_compat import osmand_error
from osmcloud_auth.osmand_orders import order_error


def test_accepted_orders_are_no_error():
    assert order_error(OrderAnswer("linked", "")) is None
    assert order_error(OrderAnswer("valid", "")) is None


def test_another_accounts_order_is_109():
    assert osmand_error(order_error(OrderAnswer("other_account", "x"))).error_code == 109


def test_unknown_expired_and_ineligible_orders_are_102_as_in_the_reference():
    for outcome in ("unknown", "expired", "not_eligible", "something-new"):
        error = osmand_error(order_error(OrderAnswer(outcome, "why")))
        assert error.error_code == 102 and error.message == "why"
