// Package buildinfo says which build of riskd is running: the module
// version and VCS revision the Go toolchain stamped into the binary.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info identifies a build.
type Info struct {
	// Version is the main module's version: a tag (v1.4.0) or a
	// pseudo-version when built from a module or a stamped checkout,
	// "(devel)" otherwise.
	Version string
	// Revision is the VCS commit, with "-dirty" when the work tree had
	// changes; "unknown" when the build was not stamped (-buildvcs=false,
	// or a source tree without its .git).
	Revision string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok)
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool) Info {
	info := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "unknown" {
		info.Revision += "-dirty"
	}
	return info
}

// String is the line -version prints: "riskd v1.4.0 (revision 0a1b2c…, go1.26.0)".
func (i Info) String(program string) string {
	return program + " " + i.Version + " (revision " + i.Revision + ", " + i.GoVersion + ")"
}
