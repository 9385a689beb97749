package hitl_test

import rego.v1

escalations(inp) := {[e.role, e.rule] | some e in data.hitl.escalate with input as inp}

test_refund_within_the_support_leads_limit_does_not_escalate if {
	count(escalations(with_amount(1000, "EUR"))) == 0
}

test_refund_over_the_support_leads_limit_escalates_to_revenue_ops if {
	escalations(with_amount(1000.01, "EUR")) == {["revenue-ops", "limits.refund-over-support-lead"]}
}

test_refund_over_revenue_ops_limit_escalates_to_finance if {
	escalations(with_amount(10001, "EUR")) == {["finance-approver", "limits.refund-over-revenue-ops"]}
}

vendor_payment(value, currency) := object.union(with_amount(value, currency), {"request": object.union(base_request, {
	"requested_by": "dev@example.com",
	"agent": {"id": "deploy-bot", "model": "m"},
	"action": {
		"type": "execute", "name": "erp.vendor_payment",
		"target": {"system": "erp", "object": "invoice/1"}, "parameters": {},
		"amount": {"value": value, "currency": currency},
	},
})})

test_vendor_payment_within_the_finance_limit_is_allowed if {
	count(deny_rules(vendor_payment(50000, "EUR"))) == 0
}

test_vendor_payment_over_the_finance_limit_is_denied if {
	deny_rules(vendor_payment(50000.5, "EUR")) == {"limits.vendor-payment-over-finance"}
}

test_vendor_payment_in_a_currency_without_a_limit_is_denied if {
	"limits.vendor-payment-currency" in deny_rules(vendor_payment(10, "USD"))
}

# object.union merges deeply, so removing a key means rebuilding each level.
without_amount(inp) := object.union(object.remove(inp, ["request"]), {"request": object.union(
	object.remove(inp.request, ["action"]),
	{"action": object.remove(inp.request.action, ["amount"])},
)})

test_refund_without_an_amount_is_denied if {
	deny_rules(without_amount(base_input)) == {"limits.amount-missing"}
}

test_vendor_payment_without_an_amount_is_denied if {
	"limits.amount-missing" in deny_rules(without_amount(vendor_payment(10, "EUR")))
}

test_reading_payments_needs_no_amount if {
	inp := without_amount(base_input)
	read := object.union(inp, {"request": object.union(inp.request, {"action": object.union(inp.request.action, {"type": "read"})})})
	not "limits.amount-missing" in deny_rules(read)
}
