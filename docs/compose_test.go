package docs_test

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aagtm/aagtm/config"
)

// No container engine runs where the tests run, so docker-compose.yml is
// checked statically: it parses, its services and network agree with each
// other, and deploy/compose/aagtm.yaml loads and names the same addresses.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		Driver string `yaml:"driver"`
		IPAM   struct {
			Config []struct {
				Subnet  string `yaml:"subnet"`
				Gateway string `yaml:"gateway"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Command   []string `yaml:"command"`
	DependsOn []string `yaml:"depends_on"`
	DNS       []string `yaml:"dns"`
	Volumes   []string `yaml:"volumes"`
	Networks  map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	} `yaml:"networks"`
}

const (
	composePath    = "../docker-compose.yml"
	composeConfig  = "../deploy/compose/aagtm.yaml"
	configInside   = "/etc/aagtm/aagtm.yaml"
	configMountDir = "/etc/aagtm"
)

func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(false) // x- extension fields, healthcheck, restart…
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return &cf
}

func loadComposeConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Options{Path: composeConfig, Environ: []string{}})
	if err != nil {
		t.Fatalf("deploy/compose/aagtm.yaml does not load: %v", err)
	}
	return cfg
}

// flagValue returns the value after flag in a command, "" when absent.
func flagValue(cmd []string, flag string) string {
	for i, a := range cmd {
		if a == flag && i+1 < len(cmd) {
			return cmd[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func TestComposeConfigLoads(t *testing.T) {
	cfg := loadComposeConfig(t)
	if cfg.Probes.HasCheck(config.CheckLag) {
		t.Error("compose members do not replicate: the lag check must be off")
	}
	if len(cfg.Regions) != 3 || len(cfg.Nodes) != 2 || len(cfg.Agents) != 3 {
		t.Errorf("compose config has %d regions, %d nodes, %d agents; docs/compose.md describes 3, 2, 3",
			len(cfg.Regions), len(cfg.Nodes), len(cfg.Agents))
	}
}

func TestComposeIsConsistent(t *testing.T) {
	cf := loadCompose(t)
	cfg := loadComposeConfig(t)

	// One user-defined bridge network with a fixed subnet.
	if len(cf.Networks) != 1 {
		t.Fatalf("want one network, have %d", len(cf.Networks))
	}
	var netName string
	var subnet netip.Prefix
	for name, n := range cf.Networks {
		netName = name
		if n.Driver != "bridge" || len(n.IPAM.Config) != 1 {
			t.Fatalf("network %s: want a bridge with one ipam subnet", name)
		}
		var err error
		if subnet, err = netip.ParsePrefix(n.IPAM.Config[0].Subnet); err != nil {
			t.Fatalf("network %s subnet: %v", name, err)
		}
	}

	// Every service has a unique static address inside it.
	ipOf := map[string]netip.Addr{}
	byIP := map[netip.Addr]string{}
	for name, s := range cf.Services {
		n, ok := s.Networks[netName]
		if !ok {
			t.Errorf("service %s is not on network %s", name, netName)
			continue
		}
		ip, err := netip.ParseAddr(n.IPv4)
		if err != nil {
			t.Errorf("service %s: ipv4_address %q: %v", name, n.IPv4, err)
			continue
		}
		if !subnet.Contains(ip) {
			t.Errorf("service %s: %s is outside %s", name, ip, subnet)
		}
		if other, dup := byIP[ip]; dup {
			t.Errorf("services %s and %s share %s", name, other, ip)
		}
		ipOf[name], byIP[ip] = ip, name
		for _, dep := range s.DependsOn {
			if _, ok := cf.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
		if s.Build.Target != "" && !dockerfileHasStage(t, s.Build.Target) {
			t.Errorf("service %s builds target %q, which the Dockerfile lacks", name, s.Build.Target)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, src)
			}
		}
	}

	// aagtm services mount the config folder and run one of its nodes or agents.
	nodeService := map[string]string{}
	agentService := map[string]string{}
	for name, s := range cf.Services {
		if len(s.Command) == 0 || (s.Command[0] != "serve" && s.Command[0] != "probe") {
			continue
		}
		if got := flagValue(s.Command, "--config"); got != configInside {
			t.Errorf("service %s: --config %q, want %s", name, got, configInside)
		}
		if !slices.ContainsFunc(s.Volumes, func(v string) bool {
			src, rest, _ := strings.Cut(v, ":")
			return filepath.Clean(filepath.Join("..", src)) == filepath.Dir(composeConfig) && strings.HasPrefix(rest, configMountDir)
		}) {
			t.Errorf("service %s does not mount ./%s at %s", name, filepath.Dir(strings.TrimPrefix(composeConfig, "../")), configMountDir)
		}
		switch s.Command[0] {
		case "serve":
			nodeService[flagValue(s.Command, "--node")] = name
		case "probe":
			agentService[flagValue(s.Command, "--agent")] = name
		}
	}

	// Nodes: report and glue addresses are the node services' addresses.
	var nodeIPs []string
	for _, n := range cfg.Nodes {
		svc, ok := nodeService[n.Name]
		if !ok {
			t.Errorf("node %s has no service running serve --node %s", n.Name, n.Name)
			continue
		}
		host, _, _ := net.SplitHostPort(n.Report)
		if host != ipOf[svc].String() {
			t.Errorf("node %s reports at %s, but service %s has %s", n.Name, n.Report, svc, ipOf[svc])
		}
		nodeIPs = append(nodeIPs, ipOf[svc].String())
	}
	if len(nodeService) != len(cfg.Nodes) {
		t.Errorf("compose runs nodes %v; the config lists %d", nodeService, len(cfg.Nodes))
	}
	for _, ns := range cfg.Zone.NS {
		if len(ns.Addresses) != 1 || !slices.Contains(nodeIPs, ns.Addresses[0].String()) {
			t.Errorf("NS %s glue %v is not a node service's address %v", ns.Name, ns.Addresses, nodeIPs)
		}
	}

	// Agents run in their region's subnet.
	for _, a := range cfg.Agents {
		svc, ok := agentService[a.ID]
		if !ok {
			t.Errorf("agent %s has no service running probe --agent %s", a.ID, a.ID)
			continue
		}
		if r, _, _ := cfg.MatchRegion(ipOf[svc]); r != a.Region {
			t.Errorf("agent %s (service %s, %s) is in region %q, want %s", a.ID, svc, ipOf[svc], r, a.Region)
		}
	}
	if len(agentService) != len(cfg.Agents) {
		t.Errorf("compose runs agents %v; the config lists %d", agentService, len(cfg.Agents))
	}

	// Members: answered and probed addresses are a redis service's, in the
	// member's region.
	for _, d := range cfg.Databases {
		for _, m := range d.Members {
			if len(m.Addresses) != 1 {
				t.Errorf("member %s: want one address", m.Name)
				continue
			}
			svc, ok := byIP[m.Addresses[0]]
			if !ok || !strings.HasPrefix(cf.Services[svc].Image, "redis") {
				t.Errorf("member %s: %s is not a redis service's address", m.Name, m.Addresses[0])
				continue
			}
			u, err := url.Parse(m.Redis)
			if err != nil || u.Hostname() != m.Addresses[0].String() {
				t.Errorf("member %s: probes %s but is answered as %s", m.Name, m.Redis, m.Addresses[0])
			}
			if r, _, _ := cfg.MatchRegion(m.Addresses[0]); r != m.Region {
				t.Errorf("member %s (%s) sits in region %q, want %s", m.Name, m.Addresses[0], r, m.Region)
			}
		}
	}

	// The client resolves through the nodes, from inside a region.
	client, ok := cf.Services["client"]
	if !ok {
		t.Fatal("no client service")
	}
	if !slices.Equal(client.DNS, nodeIPs) {
		t.Errorf("client dns %v, want the node addresses %v", client.DNS, nodeIPs)
	}
	if r, _, ok := cfg.MatchRegion(ipOf["client"]); !ok {
		t.Errorf("client %s is in no region", ipOf["client"])
	} else {
		t.Logf("client %s resolves as region %s", ipOf["client"], r)
	}
}

var stageRe = regexp.MustCompile(`(?im)^FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$`)

func dockerfileHasStage(t *testing.T, stage string) bool {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range stageRe.FindAllStringSubmatch(string(data), -1) {
		if strings.EqualFold(m[1], stage) {
			return true
		}
	}
	return false
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	froms := stageRe.FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, have %d stages", len(froms))
	}
	if !strings.HasPrefix(strings.Fields(froms[0][0])[1], "golang:1.26") {
		t.Errorf("build stage is %q, want golang:1.26", froms[0][0])
	}
	last := strings.Fields(froms[len(froms)-1][0])[1]
	if !strings.Contains(last, "distroless/static") && last != "scratch" {
		t.Errorf("runtime stage is %s, want distroless/static or scratch", last)
	}
	for _, want := range []string{
		"CGO_ENABLED=0",
		`go build -trimpath -ldflags="-s -w"`,
		"./cmd/aagtm",
		`ENTRYPOINT ["/aagtm"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	tail := df[strings.LastIndex(df, froms[len(froms)-1][0]):]
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(tail)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("the runtime stage must set a non-root USER, has %v", user)
	}
}
