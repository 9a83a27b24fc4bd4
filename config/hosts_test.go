package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestParseHosts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []deploy.Host
	}{
		{"empty", "", nil},
		{"comments and blank lines", "# pool\n\n   \n\t# indented comment\n", nil},
		{"name only", "web1\n", []deploy.Host{{Name: "web1", User: "deploy", Addr: "web1", Port: 22}}},
		{
			"user, port, trailing comment, white space",
			"  ops@web2.example.com:2222   # the second one\n",
			[]deploy.Host{{Name: "ops@web2.example.com:2222", User: "ops", Addr: "web2.example.com", Port: 2222}},
		},
		{"ipv4", "10.0.0.5:2200", []deploy.Host{{Name: "10.0.0.5:2200", User: "deploy", Addr: "10.0.0.5", Port: 2200}}},
		{"ipv6", "[::1]", []deploy.Host{{Name: "[::1]", User: "deploy", Addr: "::1", Port: 22}}},
		{
			"ipv6 with user and port",
			"deploy@[2001:db8::5]:2222",
			[]deploy.Host{{Name: "deploy@[2001:db8::5]:2222", User: "deploy", Addr: "2001:db8::5", Port: 2222}},
		},
		{"ipv6 with zone", "[fe80::1%eth0]", []deploy.Host{{Name: "[fe80::1%eth0]", User: "deploy", Addr: "fe80::1%eth0", Port: 22}}},
		{"upper-case user", "Admin_1.x-y@web1", []deploy.Host{{Name: "Admin_1.x-y@web1", User: "Admin_1.x-y", Addr: "web1", Port: 22}}},
		{
			"file order kept, same name other port or user allowed",
			"web2\nweb1\nweb1:2222\nops@web1\n",
			[]deploy.Host{
				{Name: "web2", User: "deploy", Addr: "web2", Port: 22},
				{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
				{Name: "web1:2222", User: "deploy", Addr: "web1", Port: 2222},
				{Name: "ops@web1", User: "ops", Addr: "web1", Port: 22},
			},
		},
		{"local", "local\n", []deploy.Host{{Name: "local", Addr: "localhost", Local: true}}},
		{
			"local among ssh hosts, with a comment",
			"web1\n  local   # this machine\nlocalhost\n",
			[]deploy.Host{
				{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
				{Name: "local", Addr: "localhost", Local: true},
				{Name: "localhost", User: "deploy", Addr: "localhost", Port: 22},
			},
		},
		{"local as part of a name is an ssh host", "local.example.com\nweb.local\n", []deploy.Host{
			{Name: "local.example.com", User: "deploy", Addr: "local.example.com", Port: 22},
			{Name: "web.local", User: "deploy", Addr: "web.local", Port: 22},
		}},
		{"crlf line ends", "web1\r\nweb2\r\n", []deploy.Host{
			{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
			{Name: "web2", User: "deploy", Addr: "web2", Port: 22},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHosts(strings.NewReader(tt.in), "hosts.txt", HostDefaults{User: "deploy"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseHosts(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseHostsErrors(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"::1", []string{`hosts.txt:1: "::1": write IPv6 addresses in brackets: [::1] or [::1]:22`}},
		{"deploy@2001:db8::5", []string{"write IPv6 addresses in brackets"}},
		{"[::1", []string{"missing ']'"}},
		{"[::1]2222", []string{`unexpected "2222" after ']'`}},
		{"[::1]:", []string{"empty port"}},
		{"[10.0.0.1]", []string{`"10.0.0.1" in brackets is not an IPv6 address`}},
		{"[web1]:22", []string{"not an IPv6 address"}},
		{"web1:", []string{"empty port"}},
		{"web1:0", []string{`port "0" is not a number from 1 to 65535`}},
		{"web1:65536", []string{"from 1 to 65535"}},
		{"web1:+22", []string{"from 1 to 65535"}},
		{"web1:ssh", []string{"from 1 to 65535"}},
		{"a:b:c", []string{"too many ':'"}},
		{"@web1", []string{"empty user before '@'"}},
		{"1ops@web1", []string{`user "1ops" is not a valid login name`}},
		{"o$ps@web1", []string{"not a valid login name"}},
		{strings.Repeat("u", 33) + "@web1", []string{"longer than 32 characters"}},
		{"ops@", []string{"no host"}},
		{"a@b@c", []string{`"b@c" is not a valid host name`}},
		{"web_1", []string{`"web_1" is not a valid host name`}},
		{"-web", []string{"not a valid host name"}},
		{"web-", []string{"not a valid host name"}},
		{"web..example", []string{"not a valid host name"}},
		{"web.example.", []string{"not a valid host name"}},
		{strings.Repeat("a", 64) + ".example", []string{"longer than 63"}},
		{strings.Repeat("abcdefg.", 32) + "com", []string{"longer than 253"}},
		{"999.1.1.1", []string{`"999.1.1.1" is not a valid IPv4 address`}},
		{"10.0.0", []string{"not a valid IPv4 address"}},
		{"web1 web2", []string{"contains white space; write one host a line"}},
		{"web1#x", []string{"not a valid host name"}}, // '#' starts a comment only after white space
		{"web1\x00", []string{"control character"}},
		{"[fe80::1%a\x01]", []string{"control character"}},
		{
			"web1\n# c\nWEB1:22 # same\ndeploy@[::1]\n[0:0::1]:22\n",
			[]string{
				`hosts.txt:3: "WEB1:22": the same host as line 1 (deploy@web1:22); list each host once`,
				`hosts.txt:5: "[0:0::1]:22": the same host as line 4 (deploy@[::1]:22)`,
			},
		},
		{"deploy@local", []string{`hosts.txt:1: "deploy@local": "local" (this machine, reached without SSH) is written alone`, "no user or port"}},
		{"local:22", []string{`"local:22": "local" (this machine`}},
		{"ops@local:2222", []string{"no user or port"}},
		{"LOCAL", []string{"in lower case"}},
		{"local\nweb1\n# again\nlocal # twice\n", []string{`hosts.txt:4: "local": already listed on line 1; list this machine once`}},
		{
			"bad one\nweb1\n::2\n",
			[]string{`hosts.txt:1: "bad one"`, `hosts.txt:3: "::2"`},
		},
	}
	for _, tt := range tests {
		hosts, err := ParseHosts(strings.NewReader(tt.in), "hosts.txt", HostDefaults{User: "deploy"})
		if err == nil {
			t.Errorf("ParseHosts(%q) = %v, want an error", tt.in, hosts)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("ParseHosts(%q): got error type %T, want *Error", tt.in, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseHosts(%q): got error\n%v\nwant it to contain %q", tt.in, err, w)
			}
		}
		for _, p := range ce.Problems {
			if !strings.HasPrefix(p, "hosts.txt:") {
				t.Errorf("ParseHosts(%q): problem %q does not start with file:line", tt.in, p)
			}
		}
	}
}

func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{
		"web1", "ops@web2:2222 # c", "[::1]", "deploy@[2001:db8::5]:2222", "::1", "10.0.0.5",
		"# only\n\nweb1\nweb1", "[fe80::1%eth0]:22", "a@b@c", "[", "]:", "@:", "web1:99999",
		"local", "web1\nlocal # me\n", "u@local:22", "local\nlocal",
		"web3 via bastion", "web3 via a@gw1:2222,[::1]", "web3\tvia none # direct", "web3 via", "local via gw",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		hosts, err := ParseHosts(strings.NewReader(in), "hosts.txt", HostDefaults{User: "deploy"})
		if err != nil {
			return
		}
		locals := 0
		for _, h := range hosts {
			if h.Local {
				locals++
				if !cmp.Equal(h, deploy.Host{Name: "local", Addr: "localhost", Local: true}) || locals > 1 {
					t.Fatalf("ParseHosts(%q): bad local host %+v (local host number %d)", in, h, locals)
				}
				continue
			}
			if h.Addr == "" || h.User == "" || h.Port < 1 || h.Port > 65535 {
				t.Fatalf("ParseHosts(%q): bad host %+v", in, h)
			}
			if hasControl(h.Name) || strings.ContainsAny(h.Name, " \t") {
				t.Fatalf("ParseHosts(%q): host %+v holds white space or a control character", in, h)
			}
			for _, j := range h.Jump {
				if j.Addr == "" || j.User == "" || j.Port < 1 || j.Port > 65535 || j.Local || len(j.Jump) > 0 {
					t.Fatalf("ParseHosts(%q): bad jump host %+v of %+v", in, j, h)
				}
			}
			// A host's name parses back to the same host (without its
			// jump hosts, which the name leaves out).
			again, err := ParseHosts(strings.NewReader(h.Name), "again", HostDefaults{User: "deploy"})
			direct := h
			direct.Jump = nil
			if err != nil || len(again) != 1 || !cmp.Equal(again[0], direct) {
				t.Fatalf("ParseHosts(%q) gave %+v; its name parses to %+v, %v", in, h, again, err)
			}
		}
	})
}
