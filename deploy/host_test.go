package deploy

import (
	"errors"
	"strings"
	"testing"
)

func TestSelectHosts(t *testing.T) {
	pool := []Host{
		{Name: "web1", User: "deploy", Addr: "web1", Port: 22},
		{Name: "deploy@[::1]:2222", User: "deploy", Addr: "::1", Port: 2222},
		{Name: "web3", User: "deploy", Addr: "web3", Port: 22},
		{Name: "web3:2200", User: "deploy", Addr: "web3", Port: 2200}, // a second sshd on web3
		{Name: "local", Addr: "localhost", Local: true},
	}
	all := "web1 deploy@[::1]:2222 web3 web3:2200 local"
	tests := []struct {
		names   []string
		want    string // host names; "" with wantErr
		wantErr string
	}{
		{names: nil, want: all},
		{names: []string{}, want: all},
		{names: []string{"web3:2200", "web1"}, want: "web1 web3:2200"}, // pool order, not the order asked
		{names: []string{"::1"}, want: "deploy@[::1]:2222"},            // the address
		{names: []string{"[::1]:2222"}, want: "deploy@[::1]:2222"},     // address:port
		{names: []string{"deploy@[::1]:2222"}, want: "deploy@[::1]:2222"},
		{names: []string{"web3"}, want: "web3 web3:2200"}, // an address selects every host at it
		{names: []string{"web3:22"}, want: "web3"},
		{names: []string{"web1", "web1:22", "web1"}, want: "web1"}, // each host once
		{names: []string{"local"}, want: "local"},
		{names: []string{"localhost"}, want: "local"},
		{names: []string{"web1", "web9"}, wantErr: `"web9" is not in the hosts file; its hosts are web1, deploy@[::1]:2222, web3, web3:2200, local`},
		{names: []string{"WEB1"}, wantErr: `"WEB1" is not in the hosts file`},
		{names: []string{""}, wantErr: `"" is not in the hosts file`},
	}
	for _, tt := range tests {
		got, err := SelectHosts(pool, tt.names)
		if tt.wantErr != "" {
			var ue *UnknownHostError
			if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), tt.wantErr) || got != nil {
				t.Errorf("SelectHosts(%q) = %v, %v; want an *UnknownHostError %q", tt.names, got, err, tt.wantErr)
			}
			continue
		}
		var names []string
		for _, h := range got {
			names = append(names, h.Name)
		}
		if err != nil || strings.Join(names, " ") != tt.want {
			t.Errorf("SelectHosts(%q) = %q, %v; want %q", tt.names, names, err, tt.want)
		}
	}
}
