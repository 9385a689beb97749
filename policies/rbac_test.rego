package hitl_test

import rego.v1

test_requester_outside_their_systems_is_denied if {
	inp := object.union(base_input, {"request": object.union(base_request, {"requested_by": "dev@example.com"})})
	"rbac.requester-system" in deny_rules(inp)
}

test_unknown_requester_is_denied if {
	inp := object.union(base_input, {"request": object.union(base_request, {"requested_by": "eve@example.com"})})
	"rbac.requester-system" in deny_rules(inp)
}

test_agent_calling_a_tool_it_is_not_registered_for_is_denied if {
	inp := object.union(base_input, {"request": object.union(base_request, {"agent": {"id": "deploy-bot", "model": "m"}})})
	"rbac.agent-tool" in deny_rules(inp)
}

test_unregistered_agent_is_denied if {
	inp := object.union(base_input, {"request": object.union(base_request, {"agent": {"id": "rogue", "model": "m"}})})
	"rbac.agent-registered" in deny_rules(inp)
}

test_tool_patterns_do_not_match_across_segments if {
	action := object.union(base_request.action, {"name": "payments", "target": {"system": "payments", "object": "x"}})
	inp := object.union(base_input, {"request": object.union(base_request, {"action": action})})
	"rbac.agent-tool" in deny_rules(inp)
}

test_submitter_must_be_the_agents_principal if {
	inp := object.union(base_input, {"submitter": {"principal": "deploy-bot@agents.example.com", "roles": []}})
	"rbac.agent-principal" in deny_rules(inp)
}

test_the_agents_own_principal_may_submit if {
	inp := object.union(base_input, {"submitter": {"principal": "support-copilot@agents.example.com", "roles": []}})
	not "rbac.agent-principal" in deny_rules(inp)
}
