# Source quality: a source older than the matrix's max age warns; an action of tier 3 or
# more resting only on low-authority sources is denied.
package hitl

import rego.v1

now_ns := time.parse_rfc3339_ns(input.now)

warn contains {"rule": "sources.stale", "msg": msg} if {
	max_age := input.matrix.max_source_age_seconds
	max_age != null
	some source in input.request.sources
	age := (now_ns - time.parse_rfc3339_ns(source.retrieved_at)) / 1000000000
	age > max_age
	msg := sprintf("source %s is %d days old (max %d days)", [source.id, floor(age / 86400), floor(max_age / 86400)])
}

deny contains {"rule": "sources.low-authority-only", "msg": msg} if {
	input.classification.tier >= 3
	count(input.request.sources) > 0
	every source in input.request.sources {
		source.authority == "low"
	}
	msg := sprintf("a tier %d action rests only on low-authority sources", [input.classification.tier])
}
