package deploy

import "time"

// ReleasesReport is the listing of every host's releases as `releases
// --json` prints it and GET /api/releases answers it: one shape, so that
// scripts can read either.
type ReleasesReport struct {
	// Disagree is true when the hosts' current releases differ.
	Disagree bool                `json:"disagree"`
	Hosts    []HostReleaseReport `json:"hosts"`
}

// HostReleaseReport is one host in a ReleasesReport.
type HostReleaseReport struct {
	Host     string          `json:"host"`
	Current  string          `json:"current"`
	Previous string          `json:"previous"`
	Error    string          `json:"error,omitempty"`
	Releases []ReleaseReport `json:"releases"`
}

// ReleaseReport is one release in a HostReleaseReport.
type ReleaseReport struct {
	Name     string    `json:"name"`
	Time     time.Time `json:"time"`
	Commit   string    `json:"commit"`
	Complete bool      `json:"complete"`
	Missing  []string  `json:"missing,omitempty"`
	Current  bool      `json:"current"`
	Previous bool      `json:"previous"`
}

// ReportReleases turns what Releases found into a ReleasesReport.
func ReportReleases(hosts []HostReleases) ReleasesReport {
	out := ReleasesReport{Disagree: Disagree(hosts), Hosts: []HostReleaseReport{}}
	for _, h := range hosts {
		hr := HostReleaseReport{Host: h.Host.String(), Current: h.Current, Previous: h.Previous, Releases: []ReleaseReport{}}
		if h.Err != nil {
			hr.Error = h.Err.Error()
		}
		for _, r := range h.Releases {
			// A conversion, so that a field added to ReleaseInfo and not
			// here fails to compile instead of silently missing from JSON.
			hr.Releases = append(hr.Releases, ReleaseReport(r))
		}
		out.Hosts = append(out.Hosts, hr)
	}
	return out
}
