# Shared test inputs: a valid tier-3 refund by maria through support-copilot.
package hitl_test

import rego.v1

base_request := {
	"id": "refund-1",
	"requested_by": "maria@example.com",
	"requested_at": "2026-11-27T09:00:00Z",
	"agent": {"id": "support-copilot", "model": "m"},
	"action": {
		"type": "approve",
		"name": "payments.refund",
		"target": {"system": "payments", "object": "charge/ch_1"},
		"parameters": {},
		"amount": {"value": 180, "currency": "EUR"},
	},
	"input_summary": "duplicate charge",
	"sources": [{
		"id": "ticket-1", "uri": "https://helpdesk.example.com/t/1", "authority": "system-of-record",
		"retrieved_at": "2026-11-27T08:58:00Z", "classification": "internal",
	}],
	"expires_at": "2026-11-28T09:00:00Z",
}

base_matrix := {
	"roles": {
		"support-lead": {"members": ["lea@example.com"], "limits": {"EUR": 1000}, "escalates_to": "revenue-ops"},
		"revenue-ops": {"members": ["ravi@example.com"], "limits": {"EUR": 10000}, "escalates_to": "finance-approver"},
		"finance-approver": {"members": ["felix@example.com"], "limits": {"EUR": 50000}, "escalates_to": null},
	},
	"change_windows": {"production": {
		"timezone": "Europe/Berlin", "days": ["tue", "wed", "thu"],
		"start": "09:00", "end": "16:00", "open_now": true,
	}},
	"max_source_age_seconds": 604800,
	"default_tier": 3,
}

base_input := {
	"now": "2026-11-27T10:00:00Z",
	"request": base_request,
	"classification": {"tier": 3, "change_window": null},
	"requester": {"principal": "maria@example.com", "roles": []},
	"submitter": {"principal": null, "roles": []},
	"matrix": base_matrix,
}

# base_input with the request's action amount replaced.
with_amount(value, currency) := object.union(base_input, {"request": object.union(base_request, {"action": object.union(base_request.action, {"amount": {"value": value, "currency": currency}})})})

deny_rules(inp) := {d.rule | some d in data.hitl.deny with input as inp}

warn_rules(inp) := {w.rule | some w in data.hitl.warn with input as inp}

test_base_input_is_allowed if {
	count(data.hitl.deny) == 0 with input as base_input
	count(data.hitl.warn) == 0 with input as base_input
	count(data.hitl.escalate) == 0 with input as base_input
}
