# Change window: a production config change planned outside its window warns now; the
# execution gate enforces the window later.
package hitl

import rego.v1

warn contains {"rule": "change-window.closed", "msg": msg} if {
	input.request.action.target.system == "prod-config"
	name := input.classification.change_window
	window := input.matrix.change_windows[name]
	not window.open_now
	msg := sprintf("change window %s (%s %s-%s %s) is closed now", [name, concat(", ", window.days), window.start, window.end, window.timezone])
}
