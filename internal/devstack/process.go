package devstack

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned when a server binary cannot be found.
var ErrNotInstalled = errors.New("not installed")

// process is a child server process that is stopped with stopSignal and
// killed if it does not exit within the grace period.
type process struct {
	name       string
	cmd        *exec.Cmd
	stopSignal syscall.Signal
	done       chan struct{}
	waitErr    error
	stopOnce   sync.Once
}

// startProcess starts bin with args. The child gets its own process group
// (so a terminal's Ctrl-C reaches only us, and we decide the shutdown order)
// and a parent-death signal (so it stops even if we are SIGKILLed). When
// cred is non-nil the child runs as that user.
func startProcess(name, bin string, args []string, cred *syscall.Credential, stopSignal syscall.Signal, log io.Writer) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  stopSignal,
		Credential: cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, stopSignal: stopSignal, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *process) Exited() <-chan struct{} { return p.done }

// PID is the operating-system process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// stop asks the process to exit and waits up to grace before killing it.
func (p *process) stop(grace time.Duration) error {
	var err error
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(p.stopSignal)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("%s did not stop within %s and was killed", p.name, grace)
		}
	})
	return err
}

// findBinary looks for name on PATH, then in the given directory globs
// (highest version first).
func findBinary(name string, globs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, g := range globs {
		matches, _ := filepath.Glob(filepath.Join(g, name))
		sort.Sort(sort.Reverse(byVersion(matches)))
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.Mode()&0o111 != 0 {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("%s: %w (install the OS package, e.g. `make deps`)", name, ErrNotInstalled)
}

// byVersion sorts paths like /usr/lib/postgresql/15/bin/x numerically by
// their version directory so that 16 sorts above 9.
type byVersion []string

func (b byVersion) Len() int      { return len(b) }
func (b byVersion) Swap(i, j int) { b[i], b[j] = b[j], b[i] }
func (b byVersion) Less(i, j int) bool {
	vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b[i]))))
	vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b[j]))))
	if vi != vj {
		return vi < vj
	}
	return b[i] < b[j]
}

// serviceUser returns the credential to run name's server as: the given
// system user when we are root (PostgreSQL refuses to run as root), else nil
// (run as ourselves).
func serviceUser(account string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(account)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the %q system user: %w", account, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chownTree gives dir and everything below it to cred's user.
func chownTree(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether port can be bound on loopback right now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// pickPort returns preferred if it is free, else any free port.
func pickPort(preferred int) (int, error) {
	if preferred > 0 && portFree(preferred) {
		return preferred, nil
	}
	return freePort()
}

// waitFor polls ready until it returns nil, the process exits, or timeout.
func waitFor(p *process, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = ready(); last == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited during start-up: %v", p.name, p.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %w", p.name, timeout, last)
}

// checkReachable tells, before initdb fails obscurely, whether cred's user
// can reach dir: every ancestor must be searchable by it.
func checkReachable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0 ||
			(sys != nil && sys.Uid == cred.Uid && mode&0o100 != 0) ||
			(sys != nil && sys.Gid == cred.Gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("the postgres user cannot reach %s because %s is not searchable by it; run `chmod o+x %s` or keep the data elsewhere", dir, d, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// TempDir makes a temporary folder that the server users can reach (unlike
// os.MkdirTemp's 0700), for throw-away stacks.
func TempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o711)
}

// maxSocketPath is the longest Unix socket path the kernel accepts
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// socketDirFor returns where a server keeps its Unix socket named name: dir
// itself when the path fits, else a new short folder under /tmp that the
// caller removes after the server stops (remove = true). The folder is given
// to cred's user, which must create the socket.
func socketDirFor(dir, name string, cred *syscall.Credential) (socketDir string, remove bool, err error) {
	if len(filepath.Join(dir, name)) <= maxSocketPath {
		return dir, false, nil
	}
	tmp, err := os.MkdirTemp("/tmp", "acmecrm-sock-")
	if err != nil {
		return "", false, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, err
	}
	return tmp, true, chownTree(tmp, cred)
}
