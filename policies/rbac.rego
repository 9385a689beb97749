# RBAC/ABAC: the requester must be allowed to act on the target system, and an agent
# identity may only call the tools it is registered for (policies/data/rbac.json).
package hitl

import rego.v1

deny contains {"rule": "rbac.requester-system", "msg": msg} if {
	system := input.request.action.target.system
	not requester_may_act_on(input.request.requested_by, system)
	msg := sprintf("%s may not request actions on %s", [input.request.requested_by, system])
}

deny contains {"rule": "rbac.agent-registered", "msg": msg} if {
	not data.rbac.agents[input.request.agent.id]
	msg := sprintf("agent %s is not registered", [input.request.agent.id])
}

deny contains {"rule": "rbac.agent-tool", "msg": msg} if {
	agent := data.rbac.agents[input.request.agent.id]
	tool := input.request.action.name
	not tool_allowed(agent.tools, tool)
	msg := sprintf("agent %s may not call %s", [input.request.agent.id, tool])
}

# Once proposals are signed, the submitting key must be the agent's registered principal.
deny contains {"rule": "rbac.agent-principal", "msg": msg} if {
	submitter := input.submitter.principal
	submitter != null
	agent := data.rbac.agents[input.request.agent.id]
	submitter != agent.principal
	msg := sprintf("agent %s must submit as %s, not %s", [input.request.agent.id, agent.principal, submitter])
}

requester_may_act_on(principal, system) if {
	some allowed in data.rbac.requesters[principal]
	allowed == system
}

tool_allowed(patterns, tool) if {
	some pattern in patterns
	glob.match(pattern, ["."], tool)
}
