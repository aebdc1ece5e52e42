package turn

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// ICEServer is one entry of a browser's RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Directory tells clients which STUN/TURN servers to use: this node's own
// (if it runs TURN) and the configured others, the client's region first,
// all with one fresh credential (they share the secret).
type Directory struct {
	creds    *Credentials
	groups   []regionGroup // in configuration order, own server first
	header   string
	networks []regionNetwork
}

type regionGroup struct {
	region string
	uris   []string
}

type regionNetwork struct {
	prefix netip.Prefix
	region string
}

// NewDirectory builds the directory from cfg. own are this node's URIs
// (nil when it runs no TURN).
func NewDirectory(cfg Config, creds *Credentials, own []string) (*Directory, error) {
	d := &Directory{creds: creds, header: cfg.RegionHeader}
	if len(own) > 0 {
		d.groups = append(d.groups, regionGroup{region: cfg.Region, uris: own})
	}
	for _, s := range cfg.Servers {
		region, uri, _ := strings.Cut(s, "=")
		d.add(region, uri)
	}
	for _, s := range cfg.RegionNetworks {
		cidr, region, _ := strings.Cut(s, "=")
		p, err := ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("turn.region_networks: %w", err)
		}
		d.networks = append(d.networks, regionNetwork{prefix: p, region: region})
	}
	return d, nil
}

// add appends uri to its region's group, keeping the first appearance's
// order.
func (d *Directory) add(region, uri string) {
	for i := range d.groups {
		if d.groups[i].region == region {
			d.groups[i].uris = append(d.groups[i].uris, uri)
			return
		}
	}
	d.groups = append(d.groups, regionGroup{region: region, uris: []string{uri}})
}

// ICEServers returns the servers for user, calling from r.
func (d *Directory) ICEServers(user string, r *http.Request) []ICEServer {
	cred := d.creds.Mint(user)
	out := make([]ICEServer, 0, len(d.groups))
	for _, g := range d.ordered(d.Region(r)) {
		out = append(out, ICEServer{URLs: g.uris, Username: cred.Username, Credential: cred.Password})
	}
	return out
}

// RESTResponse is the body of GET /api/turn-credentials and the output of
// quartet turn-credentials.
type RESTResponse struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	TTL      int64    `json:"ttl"`
	URIs     []string `json:"uris"`
}

// REST returns a credential for user and every URI, region first.
func (d *Directory) REST(user string, r *http.Request) RESTResponse {
	var uris []string
	for _, g := range d.ordered(d.Region(r)) {
		uris = append(uris, g.uris...)
	}
	cred := d.creds.Mint(user)
	return RESTResponse{Username: cred.Username, Password: cred.Password, TTL: cred.TTL, URIs: uris}
}

func (d *Directory) ordered(region string) []regionGroup {
	out := make([]regionGroup, 0, len(d.groups))
	for _, g := range d.groups {
		if region != "" && g.region == region {
			out = append(out, g)
		}
	}
	for _, g := range d.groups {
		if region == "" || g.region != region {
			out = append(out, g)
		}
	}
	return out
}

// Region is the client's region: from the configured header (set by a CDN
// or load balancer in front), else the longest matching configured
// network of the client's address, else "".
func (d *Directory) Region(r *http.Request) string {
	if r == nil {
		return ""
	}
	if d.header != "" {
		if v := strings.TrimSpace(r.Header.Get(d.header)); v != "" {
			return v
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	ip = ip.Unmap()
	best, region := -1, ""
	for _, n := range d.networks {
		if n.prefix.Contains(ip) && n.prefix.Bits() > best {
			best, region = n.prefix.Bits(), n.region
		}
	}
	return region
}

// OwnURIs derives this server's URIs for clients when turn.uris is not
// set: host is the address clients reach the listeners at.
func OwnURIs(host string, port, tlsPort int) []string {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	uris := []string{"stun:" + hp, "turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
	if tlsPort != 0 {
		uris = append(uris, "turns:"+net.JoinHostPort(host, strconv.Itoa(tlsPort))+"?transport=tcp")
	}
	return uris
}
