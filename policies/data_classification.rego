# Data classification: a confidential or restricted source must not feed an external
# send (email, contracts).
package hitl

import rego.v1

external_systems := {"email", "contracts"}

sensitive := {"confidential", "restricted"}

deny contains {"rule": "classification.external-send", "msg": msg} if {
	input.request.action.type == "send"
	input.request.action.target.system in external_systems
	some source in input.request.sources
	source.classification in sensitive
	msg := sprintf("source %s is %s and must not feed an external send to %s", [source.id, source.classification, input.request.action.target.system])
}
