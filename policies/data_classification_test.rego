package hitl_test

import rego.v1

email_with_source(classification) := object.union(base_input, {"request": object.union(base_request, {
	"action": {"type": "send", "name": "email.send", "target": {"system": "email", "object": "mailto:x@y"}, "parameters": {}},
	"sources": [object.union(base_request.sources[0], {"classification": classification})],
})})

test_confidential_source_in_external_email_is_denied if {
	"classification.external-send" in deny_rules(email_with_source("confidential"))
}

test_restricted_source_in_external_email_is_denied if {
	"classification.external-send" in deny_rules(email_with_source("restricted"))
}

test_internal_source_in_external_email_is_allowed if {
	count(deny_rules(email_with_source("internal"))) == 0
}

test_confidential_source_for_an_internal_action_is_allowed if {
	inp := object.union(base_input, {"request": object.union(base_request, {"sources": [object.union(base_request.sources[0], {"classification": "confidential"})]})})
	count(deny_rules(inp)) == 0
}
