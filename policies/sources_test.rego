package hitl_test

import rego.v1

with_sources(sources, tier) := object.union(base_input, {
	"request": object.union(base_request, {"sources": sources}),
	"classification": {"tier": tier, "change_window": null},
})

source(authority, retrieved_at) := object.union(base_request.sources[0], {"authority": authority, "retrieved_at": retrieved_at})

test_source_older_than_the_max_age_warns if {
	"sources.stale" in warn_rules(with_sources([source("high", "2026-11-12T10:00:00Z")], 3))
}

test_source_just_within_the_max_age_does_not_warn if {
	not "sources.stale" in warn_rules(with_sources([source("high", "2026-11-20T10:00:01Z")], 3))
}

test_tier_3_on_low_authority_sources_only_is_denied if {
	"sources.low-authority-only" in deny_rules(with_sources([source("low", "2026-11-27T09:00:00Z")], 3))
}

test_tier_2_on_low_authority_sources_is_allowed if {
	not "sources.low-authority-only" in deny_rules(with_sources([source("low", "2026-11-27T09:00:00Z")], 2))
}

test_one_strong_source_is_enough if {
	not "sources.low-authority-only" in deny_rules(with_sources([source("low", "2026-11-27T09:00:00Z"), source("high", "2026-11-27T09:00:00Z")], 4))
}
