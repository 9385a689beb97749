# Limits: a refund above the support lead's limit escalates to revenue-ops, above
# revenue-ops' limit to finance-approver; a vendor payment above the finance approver's
# limit is denied. The limits come from the matrix (input.matrix.roles).
#
# Limits are rules, not functions: a rule is evaluated once per decision, a function on
# every call.
package hitl

import rego.v1

amount := input.request.action.amount

support_lead_limit := input.matrix.roles["support-lead"].limits[amount.currency]

revenue_ops_limit := input.matrix.roles["revenue-ops"].limits[amount.currency]

finance_limit := input.matrix.roles["finance-approver"].limits[amount.currency]

is_refund if input.request.action.name == "payments.refund"

is_vendor_payment if startswith(input.request.action.name, "erp.vendor_payment")

escalate contains {"rule": "limits.refund-over-support-lead", "role": "revenue-ops", "reason": msg} if {
	is_refund
	amount.value > support_lead_limit
	amount.value <= revenue_ops_limit
	msg := sprintf("refund of %v %s is above the support lead's limit of %v", [amount.value, amount.currency, support_lead_limit])
}

escalate contains {"rule": "limits.refund-over-revenue-ops", "role": "finance-approver", "reason": msg} if {
	is_refund
	amount.value > revenue_ops_limit
	msg := sprintf("refund of %v %s is above revenue-ops' limit of %v", [amount.value, amount.currency, revenue_ops_limit])
}

deny contains {"rule": "limits.vendor-payment-over-finance", "msg": msg} if {
	is_vendor_payment
	amount.value > finance_limit
	msg := sprintf("vendor payment of %v %s is above the finance approver's limit of %v", [amount.value, amount.currency, finance_limit])
}

# An amount in a currency the finance approver has no limit for cannot be checked.
deny contains {"rule": "limits.vendor-payment-currency", "msg": msg} if {
	is_vendor_payment
	not finance_limit
	msg := sprintf("no finance limit is defined for %s", [amount.currency])
}

# Limits only work on a stated amount: a money movement without `action.amount` would slip
# past every threshold (the sum could hide in `parameters`).
money_systems := {"payments", "erp"}

money_writes := {"approve", "execute", "update", "delete"}

deny contains {"rule": "limits.amount-missing", "msg": msg} if {
	input.request.action.target.system in money_systems
	input.request.action.type in money_writes
	not input.request.action.amount
	msg := sprintf("%s on %s moves money but states no `action.amount`", [input.request.action.name, input.request.action.target.system])
}
