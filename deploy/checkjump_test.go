package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// jumpDialer logs in to every host but those in fail, and records what
// was dialed (name, and the jump hosts before it) and how many
// connections are open.
type jumpDialer struct {
	fail map[string]error

	mu     sync.Mutex
	dialed []string
	open   int
}

func (d *jumpDialer) Dial(_ context.Context, h Host) (Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialed = append(d.dialed, h.String()+" via "+jumpNames(h.Jump))
	if err := d.fail[h.Addr]; err != nil {
		return nil, err
	}
	d.open++
	return &jumpConn{d: d}, nil
}

type jumpConn struct{ d *jumpDialer }

func (c *jumpConn) Run(context.Context, Command) error { return nil }

func (c *jumpConn) Close() error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.open--
	return nil
}

// TestCheckJumps: check reports each jump host once (reached and logged
// into, and for which hosts), before the hosts; a jump host that fails is
// reported as itself, and the hosts (and further jump hosts) behind it are
// not tried, each saying which jump host failed.
func TestCheckJumps(t *testing.T) {
	hop := func(name string) Host { return Host{Name: name, User: "deploy", Addr: name, Port: 22} }
	host := func(name string, jump ...Host) Host {
		return Host{Name: name, User: "deploy", Addr: name, Port: 22, Jump: jump}
	}
	gw1, gw2, gw3, gw4, gw5 := hop("gw1"), hop("gw2"), hop("gw3"), hop("gw4"), hop("gw5")
	gw2again := gw2
	gw2again.Name = "deploy@gw2:22" // the same jump host, written otherwise
	hosts := []Host{
		host("web1", gw1),
		host("web2", gw1),
		host("web3", gw2),
		host("web4", gw2again, gw3),
		host("web5"),
		host("web6", gw4, gw5),
		host("web7", gw1, gw3), // gw3 behind gw1 is another jump than gw3 behind gw2
	}
	refused := errors.New("ssh login deploy@gw1:22: host key of gw1 is unknown")
	dialer := &jumpDialer{fail: map[string]error{"gw1": refused, "gw4": errors.New("connect gw4:22: connection refused")}}
	d := &Deployer{
		Dialer: dialer, Resolver: fakeResolver{err: errors.New("no repository in this test")},
		Root: "app", Python: "python3", StepTimeout: time.Minute,
	}
	var got []string
	for _, r := range d.Check(context.Background(), hosts) {
		if r.Name != "jump" && r.Name != "login" {
			continue
		}
		line := fmt.Sprintf("%s %s: ", r.Host, r.Name)
		if r.Err != nil {
			line += "FAIL " + r.Err.Error()
		} else {
			line += r.Detail
		}
		got = append(got, line)
	}
	want := []string{
		"gw1 jump: FAIL " + refused.Error(),
		"gw2 jump: reached, host key known, logged in as deploy; jump host of web3, web4",
		"gw4 jump: FAIL connect gw4:22: connection refused",
		"gw3 jump: through gw2: reached, host key known, logged in as deploy; jump host of web4",
		"gw5 jump: FAIL not tried: its jump host gw4 failed",
		"gw3 jump: FAIL not tried: its jump host gw1 failed",
		"web1 login: FAIL not tried: its jump host gw1 failed",
		"web2 login: FAIL not tried: its jump host gw1 failed",
		"web3 login: host key known, logged in as deploy through gw2",
		"web4 login: host key known, logged in as deploy through deploy@gw2:22,gw3",
		"web5 login: host key known, logged in as deploy",
		"web6 login: FAIL not tried: its jump host gw4 failed",
		"web7 login: FAIL not tried: its jump host gw1 failed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	dialer.mu.Lock()
	defer dialer.mu.Unlock()
	dials := map[string]int{}
	for _, s := range dialer.dialed {
		dials[s]++
	}
	wantDials := map[string]int{
		"gw1 via ": 1, "gw2 via ": 1, "gw4 via ": 1, "gw3 via gw2": 1,
		"web3 via gw2": 1, "web4 via deploy@gw2:22,gw3": 1, "web5 via ": 1,
	}
	if fmt.Sprint(dials) != fmt.Sprint(wantDials) {
		t.Errorf("dialed %v, want %v", dials, wantDials)
	}
	if dialer.open != 0 {
		t.Errorf("%d connections left open after Check", dialer.open)
	}
}

func TestCheckNoJumps(t *testing.T) {
	if levels := jumpLevels([]Host{{Name: "web1"}, {Name: "local", Local: true}}); len(levels) != 0 {
		t.Errorf("jumpLevels of a pool without jump hosts = %v, want none", levels)
	}
}
