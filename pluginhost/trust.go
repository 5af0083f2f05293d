package pluginhost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Reasons Trust.Check finds a plugin file untrusted. A *TrustError wraps
// one of them, or the error of a path that could not be examined.
var (
	// ErrWritable: the file, or a directory above it, is writable by its
	// group or by others, who could then replace the plugin.
	ErrWritable = errors.New("pluginhost: writable by group or others")
	// ErrOwner: the file, or a directory above it, belongs to a user other
	// than root and Trust.UID; that user could make it writable.
	ErrOwner = errors.New("pluginhost: owned by another user")
	// ErrSetID: the file is setuid or setgid.
	ErrSetID = errors.New("pluginhost: setuid or setgid")
	// ErrNotRegular: the file is not a regular file (a FIFO, a device).
	ErrNotRegular = errors.New("pluginhost: not a regular file")
	// ErrOutside: the file is a symbolic link that leads outside every
	// plugin directory.
	ErrOutside = errors.New("pluginhost: symbolic link outside the plugin directories")
)

// Trust checks, before a plugin file is opened, that nobody but root and
// one user (the process's own) could have put code into it: sshd's
// StrictModes, limited to the plugin tree. Whoever can write a plugin file,
// or a directory on its way, can replace it and run code as this process.
// The checks:
//
//   - the file is a regular file, and neither setuid nor setgid: a plugin
//     never needs either, so either bit means something is wrong;
//   - the file and every directory from it up to the plugin directory it
//     was found in belong to root or to UID, and are not writable by group
//     or others; a root-owned directory with the sticky bit (/tmp) is safe,
//     since only root and a file's owner may replace a file in it;
//   - a file that is a symbolic link leads into one of Dirs, and the
//     directories from its target up to that one pass the same checks;
//     a file named by itself may lead anywhere, and then the directory
//     that holds its target is checked.
//
// The checks stop at the plugin directory: what is above it is the
// system's, as sshd stops at the home directory.
type Trust struct {
	// UID is the user, besides root, whose files and directories are
	// trusted: the process's effective user id.
	UID int
	// Dirs are the plugin directories: where a symbolic link found in them
	// may lead.
	Dirs []string
}

// Check returns every problem that makes the plugin file at path
// untrusted, nil when there is none. top is the plugin directory path was
// found below, or, for a file named by itself, the directory that holds
// it; named is true for such a file, which may be a link to anywhere.
func (t Trust) Check(path, top string, named bool) []*TrustError {
	real, err := resolve(path)
	if err != nil {
		return []*TrustError{{Path: path, Err: err}}
	}
	dir, err := resolve(filepath.Dir(path))
	if err != nil {
		return []*TrustError{{Path: filepath.Dir(path), Err: err}}
	}
	realTop, err := resolve(top)
	if err != nil {
		return []*TrustError{{Path: top, Err: err}}
	}
	problems := t.checkFile(real)
	// The directories that hold the name the file was found under, then,
	// for a link, those that hold what it leads to; each once.
	seen := map[string]bool{}
	problems = append(problems, t.checkDirs(dir, realTop, seen)...)
	if real != filepath.Join(dir, filepath.Base(path)) {
		within := t.within(real)
		switch {
		case within != "":
			problems = append(problems, t.checkDirs(filepath.Dir(real), within, seen)...)
		case named:
			problems = append(problems, t.checkDirs(filepath.Dir(real), filepath.Dir(real), seen)...)
		default:
			problems = append(problems, &TrustError{Path: path, Target: real, Err: ErrOutside})
		}
	}
	return problems
}

// resolve returns the absolute path of path, links resolved.
func resolve(path string) (string, error) {
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	return filepath.Abs(path)
}

// within returns the deepest of t.Dirs that holds real, links resolved,
// or "".
func (t Trust) within(real string) string {
	best := ""
	for _, d := range t.Dirs {
		d, err := resolve(d)
		if err != nil || len(d) <= len(best) {
			continue
		}
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			best = d
		}
	}
	return best
}

// checkFile checks the plugin file itself, links resolved.
func (t Trust) checkFile(real string) []*TrustError {
	st, err := lstat(real)
	if err != nil {
		return []*TrustError{{Path: real, Err: err}}
	}
	bad := func(err error) *TrustError {
		return &TrustError{Path: real, Mode: st.mode, UID: st.uid, user: t.UID, Err: err}
	}
	var problems []*TrustError
	if st.mode&syscall.S_IFMT != syscall.S_IFREG {
		problems = append(problems, bad(ErrNotRegular))
	}
	if st.mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 {
		problems = append(problems, bad(ErrSetID))
	}
	return append(problems, t.checkOwnerAndMode(real, st, false)...)
}

// checkDirs checks dir and every directory above it up to top, or up to
// the root when dir is not below top, except those in seen, which it adds
// to.
func (t Trust) checkDirs(dir, top string, seen map[string]bool) []*TrustError {
	var problems []*TrustError
	for {
		if !seen[dir] {
			seen[dir] = true
			st, err := lstat(dir)
			if err != nil {
				return append(problems, &TrustError{Path: dir, Err: err})
			}
			problems = append(problems, t.checkOwnerAndMode(dir, st, true)...)
		}
		parent := filepath.Dir(dir)
		if dir == top || parent == dir {
			return problems
		}
		dir = parent
	}
}

// checkOwnerAndMode checks who owns path and who may write it.
func (t Trust) checkOwnerAndMode(path string, st stat, isDir bool) []*TrustError {
	var problems []*TrustError
	bad := func(err error) *TrustError {
		return &TrustError{Path: path, Dir: isDir, Mode: st.mode, UID: st.uid, user: t.UID, Err: err}
	}
	if st.uid != 0 && st.uid != t.UID {
		problems = append(problems, bad(ErrOwner))
	}
	sticky := isDir && st.uid == 0 && st.mode&syscall.S_ISVTX != 0
	if st.mode&0o022 != 0 && !sticky {
		problems = append(problems, bad(ErrWritable))
	}
	return problems
}

// stat is what the checks read of a file: its type and mode bits as
// stat(2) gives them, and its owner.
type stat struct {
	mode uint32
	uid  int
}

func lstat(path string) (stat, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return stat{}, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return stat{}, fmt.Errorf("%s: no owner or mode to check on this system", path)
	}
	return stat{mode: uint32(st.Mode), uid: int(st.Uid)}, nil
}

// TrustError is one problem Trust.Check found: the file or directory at
// fault, what is wrong with it, and, in its message, how to fix it.
type TrustError struct {
	// Path is the file or directory at fault: the plugin file (links
	// resolved), a directory above it, or for ErrOutside the link.
	Path string
	// Dir is true when Path is a directory.
	Dir bool
	// Mode is Path's type and mode bits, as stat(2) gives them.
	Mode uint32
	// UID is Path's owner.
	UID int
	// Target is where the link leads, for ErrOutside.
	Target string
	// Err is one of the Err* reasons above, or the error of a path that
	// could not be examined.
	Err error

	user int // Trust.UID, for the message
}

// Error says what is at fault, its mode and owner, what is wrong, and how
// to fix it, such as
//
//	plugin file /srv/plugins/calc.so (mode 0666, owner root (0)) is writable by others: chmod go-w /srv/plugins/calc.so
func (e *TrustError) Error() string {
	what := "plugin file"
	if e.Dir {
		what = "directory"
	}
	at := fmt.Sprintf("%s %s (mode %04o, owner %s)", what, e.Path, e.Mode&0o7777, userName(e.UID))
	switch e.Err {
	case ErrWritable:
		return fmt.Sprintf("%s is writable by %s, who could replace the plugin: chmod go-w %s", at, writers(e.Mode), e.Path)
	case ErrOwner:
		owners := "root"
		if e.user != 0 {
			owners += " or " + userName(e.user)
		}
		return fmt.Sprintf("%s belongs to a user other than %s, who could change it: chown root %s", at, owners, e.Path)
	case ErrSetID:
		return fmt.Sprintf("%s is %s, which a plugin never needs: chmod ug-s %s", at, setID(e.Mode), e.Path)
	case ErrNotRegular:
		return fmt.Sprintf("%s is not a regular file", at)
	case ErrOutside:
		return fmt.Sprintf("%s is a symbolic link to %s, outside the plugin directories", e.Path, e.Target)
	}
	return fmt.Sprintf("cannot check %s: %v", e.Path, unwrapPath(e.Err))
}

// Unwrap returns the reason, for errors.Is.
func (e *TrustError) Unwrap() error { return e.Err }

// Permissions reports whether the problem is one of ownership or mode
// (ErrOwner, ErrWritable): who else could write the plugin. Those are the
// problems an operator may choose to accept; the others always refuse the
// file.
func (e *TrustError) Permissions() bool {
	return errors.Is(e.Err, ErrOwner) || errors.Is(e.Err, ErrWritable)
}

func writers(mode uint32) string {
	switch mode & 0o022 {
	case 0o020:
		return "its group"
	case 0o002:
		return "others"
	}
	return "its group and others"
}

func setID(mode uint32) string {
	switch mode & (syscall.S_ISUID | syscall.S_ISGID) {
	case syscall.S_ISUID:
		return "setuid"
	case syscall.S_ISGID:
		return "setgid"
	}
	return "setuid and setgid"
}

// userName returns "name (uid)", or the uid alone when it names no user.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (" + id + ")"
	}
	return id
}

// unwrapPath drops the operation and path of a *fs.PathError, which the
// message names already.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
