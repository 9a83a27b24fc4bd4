package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pushdeploy/pushdeploy/deploy"
)

func TestParseJump(t *testing.T) {
	tests := []struct {
		in   string
		want []deploy.Host
	}{
		{"", nil},
		{"  ", nil},
		{"none", nil},
		{"bastion", []deploy.Host{{Name: "bastion", User: "deploy", Addr: "bastion", Port: 22}}},
		{"admin@bastion.example.com:2222", []deploy.Host{{Name: "admin@bastion.example.com:2222", User: "admin", Addr: "bastion.example.com", Port: 2222}}},
		{"10.0.0.1:2200", []deploy.Host{{Name: "10.0.0.1:2200", User: "deploy", Addr: "10.0.0.1", Port: 2200}}},
		{"[2001:db8::9]", []deploy.Host{{Name: "[2001:db8::9]", User: "deploy", Addr: "2001:db8::9", Port: 22}}},
		{"ops@[::1]:2222", []deploy.Host{{Name: "ops@[::1]:2222", User: "ops", Addr: "::1", Port: 2222}}},
		{
			"gw1, ops@gw2.internal:2222 ,[fe80::1%eth0]",
			[]deploy.Host{
				{Name: "gw1", User: "deploy", Addr: "gw1", Port: 22},
				{Name: "ops@gw2.internal:2222", User: "ops", Addr: "gw2.internal", Port: 2222},
				{Name: "[fe80::1%eth0]", User: "deploy", Addr: "fe80::1%eth0", Port: 22},
			},
		},
	}
	for _, tt := range tests {
		got, err := ParseJump(tt.in, "deploy")
		if err != nil {
			t.Errorf("ParseJump(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseJump(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseJumpErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"gw1,", "empty jump host (a ',' too many?)"},
		{",gw1", `jump host 1 "": empty jump host`},
		{"gw1,,gw2", `jump host 2 "": empty jump host`},
		{"gw1,none", `jump host 2 "none": "none" (go direct) is written alone`},
		{"ssh://gw1:2222", "without a URL scheme"},
		{"local", `"local" (this machine) cannot be a jump host`},
		{"deploy@local:22", "cannot be a jump host"},
		{"::1", "write IPv6 addresses in brackets"},
		{"gw1:0", `port "0" is not a number from 1 to 65535`},
		{"gw_1", `"gw_1" is not a valid host name`},
		{"1ops@gw1", "not a valid login name"},
		{"gw1 gw2", "contains white space"},
		{"gw1,gw2\x00", `jump host 2 "gw2\x00": contains a control character`},
	}
	for _, tt := range tests {
		hops, err := ParseJump(tt.in, "deploy")
		if err == nil {
			t.Errorf("ParseJump(%q) = %+v, want an error", tt.in, hops)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseJump(%q): got error\n%v\nwant it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestParseHostsJump(t *testing.T) {
	gw := []deploy.Host{{Name: "gw", User: "deploy", Addr: "gw", Port: 22}}
	tests := []struct {
		name string
		in   string
		jump []deploy.Host // DEPLOY_SSH_JUMP
		want []deploy.Host
	}{
		{"DEPLOY_SSH_JUMP applies to every line", "web1\nops@web2:2222\n", gw, []deploy.Host{
			{Name: "web1", User: "deploy", Addr: "web1", Port: 22, Jump: gw},
			{Name: "ops@web2:2222", User: "ops", Addr: "web2", Port: 2222, Jump: gw},
		}},
		{"a line's own jump", "web1\nweb3 via admin@bastion2:2222 # the other data centre\n", nil, []deploy.Host{
			{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
			{Name: "web3", User: "deploy", Addr: "web3", Port: 22, Jump: []deploy.Host{
				{Name: "admin@bastion2:2222", User: "admin", Addr: "bastion2", Port: 2222},
			}},
		}},
		{"a line's own jump overrides DEPLOY_SSH_JUMP", "web3 via bastion2", gw, []deploy.Host{
			{Name: "web3", User: "deploy", Addr: "web3", Port: 22, Jump: []deploy.Host{
				{Name: "bastion2", User: "deploy", Addr: "bastion2", Port: 22},
			}},
		}},
		{"a name", "deploy@10.0.0.5:2222 as web1\nops@[2001:db8::6] as web2 via none\n10.0.0.7 as web3 via bastion2\n", gw, []deploy.Host{
			{Name: "web1", User: "deploy", Addr: "10.0.0.5", Port: 2222, Jump: gw},
			{Name: "web2", User: "ops", Addr: "2001:db8::6", Port: 22},
			{Name: "web3", User: "deploy", Addr: "10.0.0.7", Port: 22, Jump: []deploy.Host{
				{Name: "bastion2", User: "deploy", Addr: "bastion2", Port: 22},
			}},
		}},
		{"via none goes direct", "web1\nweb9 via none\n", gw, []deploy.Host{
			{Name: "web1", User: "deploy", Addr: "web1", Port: 22, Jump: gw},
			{Name: "web9", User: "deploy", Addr: "web9", Port: 22},
		}},
		{"several hops, tabs and spaces", "  ops@[2001:db8::5]:22\t via \t gw1,ops@[2001:db8::1]:2222  ", nil, []deploy.Host{
			{Name: "ops@[2001:db8::5]:22", User: "ops", Addr: "2001:db8::5", Port: 22, Jump: []deploy.Host{
				{Name: "gw1", User: "deploy", Addr: "gw1", Port: 22},
				{Name: "ops@[2001:db8::1]:2222", User: "ops", Addr: "2001:db8::1", Port: 2222},
			}},
		}},
		{"local takes no jump from DEPLOY_SSH_JUMP", "local\nweb1\n", gw, []deploy.Host{
			{Name: "local", Addr: "localhost", Local: true},
			{Name: "web1", User: "deploy", Addr: "web1", Port: 22, Jump: gw},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHosts(strings.NewReader(tt.in), "hosts.txt", HostDefaults{User: "deploy", Jump: tt.jump})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseHosts(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseHostsJumpErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web3 via", `hosts.txt:1: "web3 via": "via" needs the jump host(s) after it, e.g. web3 via bastion`},
		{"web3 via gw1, gw2", "separate jump hosts with commas alone, e.g. web3 via gw1,gw2"},
		{"web3 VIA gw", `"VIA": write "via" in lower case`},
		{"web3 jump=gw", `"jump=gw": name a jump host with "via", e.g. web3 via bastion`},
		{"web3 ProxyJump=gw", `name a jump host with "via"`},
		{"web3 gw", "contains white space; write one host a line: HOST, HOST via JUMP[,JUMP…]"},
		{"web3 via gw extra", "white space in the jump list"},
		{"local via gw", `"local" (this machine) is reached without SSH: it takes no jump host`},
		{"web3 via local", "cannot be a jump host"},
		{"web3 via gw,", `hosts.txt:1: "web3 via gw,": jump host 2 "": empty jump host`},
		{"web3 via none,gw", `"none" (go direct) is written alone`},
		{"web3 via ::1", "write IPv6 addresses in brackets"},
		{"web_3 via gw", `"web_3" is not a valid host name`},
		{"web3 via g\x0bw", "control character"},
		{"web3\x0bvia gw", "control character"},
		{"web1 via gw1\nweb1 via gw2\n", `hosts.txt:2: "web1 via gw2": the same host as line 1 (deploy@web1:22); list each host once`},
		{"10.0.0.5 as", `"as" needs a name after it, e.g. 10.0.0.5 as web1`},
		{"10.0.0.5 as web_1!", `name "web_1!": use letters, digits`},
		{"10.0.0.5 as local", `name "local" is a word of the hosts file`},
		{"10.0.0.5 via gw as web1", `write "as" before "via": 10.0.0.5 as web1 via gw`},
		{"10.0.0.5 as web1\n10.0.0.6 as web1\n", `hosts.txt:2: "10.0.0.6 as web1": the name web1 is taken by line 1; give each host its own name`},
		{"web1\n10.0.0.6 as web1\n", `the name web1 is taken by line 1`},
		{"10.0.0.5 as web1 extra", "contains white space"},
	}
	for _, tt := range tests {
		hosts, err := ParseHosts(strings.NewReader(tt.in), "hosts.txt", HostDefaults{User: "deploy"})
		if err == nil {
			t.Errorf("ParseHosts(%q) = %+v, want an error", tt.in, hosts)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("ParseHosts(%q): got error type %T, want *Error", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseHosts(%q): got error\n%v\nwant it to contain %q", tt.in, err, tt.want)
		}
	}
}

// TestLoadSSHJump: DEPLOY_SSH_JUMP reaches every host that names no jump,
// with DEPLOY_SSH_USER as the jump's login where it names none; a bad value
// names the variable, and the hosts file's problems are reported with it.
func TestLoadSSHJump(t *testing.T) {
	f := setup(t)
	writeFile(t, f.hostsFile, "web1\nweb2 via none\nweb3 via ops@gw2:2222\n", 0o644)
	t.Setenv("DEPLOY_SSH_USER", "app")
	t.Setenv("DEPLOY_SSH_JUMP", "gw1")
	c, _, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]deploy.Host{
		{{Name: "gw1", User: "app", Addr: "gw1", Port: 22}},
		nil,
		{{Name: "ops@gw2:2222", User: "ops", Addr: "gw2", Port: 2222}},
	}
	for i, h := range c.Hosts {
		if diff := cmp.Diff(want[i], h.Jump); diff != "" {
			t.Errorf("host %s: jump mismatch (-want +got):\n%s", h, diff)
		}
	}

	writeFile(t, f.hostsFile, "web1\nweb3 via\n", 0o644)
	t.Setenv("DEPLOY_SSH_JUMP", "gw1,,gw2")
	_, _, err = Load("", false)
	wantProblems(t, err,
		`DEPLOY_SSH_JUMP: "gw1,,gw2": jump host 2 "": empty jump host (a ',' too many?); expected [user@]host[:port], several separated by commas`,
		`hosts.txt:2: "web3 via": "via" needs the jump host(s) after it`)
}
