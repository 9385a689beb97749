# RBAC/ABAC: the requester must be allowed to act on the target system, and an agent
# identity may only call the tools it is registered for (policies/data/rbac.json).
package hitl

import rego.v1

deny contains {"rule": "rbac.requester-system", "msg": msg} if {
	system := input.request.action.target.system
	not requester_may_act_on_target
	msg := sprintf("%s may not request actions on %s", [input.request.requested_by, system])
}

deny contains {"rule": "rbac.agent-registered", "msg": msg} if {
	not data.rbac.agents[input.request.agent.id]
	msg := sprintf("agent %s is not registered", [input.request.agent.id])
}

deny contains {"rule": "rbac.agent-tool", "msg": msg} if {
	data.rbac.agents[input.request.agent.id]
	not agent_may_call_tool
	msg := sprintf("agent %s may not call %s", [input.request.agent.id, input.request.action.name])
}

# Once proposals are signed, the submitting key must be the agent's registered principal.
deny contains {"rule": "rbac.agent-principal", "msg": msg} if {
	submitter := input.submitter.principal
	submitter != null
	agent := data.rbac.agents[input.request.agent.id]
	submitter != agent.principal
	msg := sprintf("agent %s must submit as %s, not %s", [input.request.agent.id, agent.principal, submitter])
}

# Helpers are rules, not functions: evaluated once per decision.
requester_may_act_on_target if {
	input.request.action.target.system in data.rbac.requesters[input.request.requested_by]
}

# A tool entry is an exact tool name or `<system>.*` (any tool of that system). Set and
# string operations instead of a loop over patterns with glob.match: each builtin call
# costs about a microsecond, a compiled glob far more.
agent_may_call_tool if {
	input.request.action.name in data.rbac.agents[input.request.agent.id].tools
}

agent_may_call_tool if {
	parts := split(input.request.action.name, ".")
	count(parts) > 1
	concat("", [parts[0], ".*"]) in data.rbac.agents[input.request.agent.id].tools
}
