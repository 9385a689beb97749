package hitl_test

import rego.v1

prod_change(open) := object.union(base_input, {
	"request": object.union(base_request, {
		"requested_by": "dev@example.com",
		"agent": {"id": "deploy-bot", "model": "m"},
		"action": {"type": "update", "name": "prod-config.apply", "target": {"system": "prod-config", "object": "service/x"}, "parameters": {}},
	}),
	"classification": {"tier": 4, "change_window": "production"},
	"matrix": object.union(base_matrix, {"change_windows": {"production": object.union(base_matrix.change_windows.production, {"open_now": open})}}),
})

test_prod_change_outside_the_window_warns if {
	"change-window.closed" in warn_rules(prod_change(false))
}

test_prod_change_inside_the_window_does_not_warn if {
	not "change-window.closed" in warn_rules(prod_change(true))
}

test_outside_the_window_is_a_warning_not_a_denial if {
	count(deny_rules(prod_change(false))) == 0
}
