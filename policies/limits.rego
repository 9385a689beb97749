# Limits: a refund above the support lead's limit escalates to revenue-ops, above
# revenue-ops' limit to finance-approver; a vendor payment above the finance approver's
# limit is denied. The limits come from the matrix (input.matrix.roles).
package hitl

import rego.v1

amount := input.request.action.amount

limit(role) := input.matrix.roles[role].limits[amount.currency]

is_refund if input.request.action.name == "payments.refund"

is_vendor_payment if startswith(input.request.action.name, "erp.vendor_payment")

escalate contains {"rule": "limits.refund-over-support-lead", "role": "revenue-ops", "reason": msg} if {
	is_refund
	amount.value > limit("support-lead")
	amount.value <= limit("revenue-ops")
	msg := sprintf("refund of %v %s is above the support lead's limit of %v", [amount.value, amount.currency, limit("support-lead")])
}

escalate contains {"rule": "limits.refund-over-revenue-ops", "role": "finance-approver", "reason": msg} if {
	is_refund
	amount.value > limit("revenue-ops")
	msg := sprintf("refund of %v %s is above revenue-ops' limit of %v", [amount.value, amount.currency, limit("revenue-ops")])
}

deny contains {"rule": "limits.vendor-payment-over-finance", "msg": msg} if {
	is_vendor_payment
	amount.value > limit("finance-approver")
	msg := sprintf("vendor payment of %v %s is above the finance approver's limit of %v", [amount.value, amount.currency, limit("finance-approver")])
}

# An amount in a currency the finance approver has no limit for cannot be checked.
deny contains {"rule": "limits.vendor-payment-currency", "msg": msg} if {
	is_vendor_payment
	not input.matrix.roles["finance-approver"].limits[amount.currency]
	msg := sprintf("no finance limit is defined for %s", [amount.currency])
}
