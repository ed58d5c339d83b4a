package fhir

// fail answers with one issue.
func (x *exchange) fail(status int, issue Issue) {
	x.respond(status, []Issue{issue})
}

// respond answers with an OperationOutcome of issues.
func (x *exchange) respond(status int, issues []Issue) {
	x.write(status, OperationOutcome(issues), issues)
}

// write sends status and body (none if nil) and records the outcome.
func (x *exchange) write(status int, body []byte, issues []Issue) {
	x.info.Status = status
	for _, is := range issues {
		switch {
		case is.IsError():
			x.info.Errors++
		case is.Severity == SeverityWarning:
			x.info.Warnings++
		}
	}
	h := x.w.Header()
	h.Set("Cache-Control", "no-store")
	if body == nil {
		x.w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	x.w.WriteHeader(status)
	x.w.Write(body)
}
