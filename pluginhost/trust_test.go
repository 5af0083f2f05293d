package pluginhost

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trustTree makes a plugin directory top holding sub/p.so, every part
// owned by the test's user and writable by it only. Check reads modes and
// owners, never the contents, so p.so need not be a shared object.
func trustTree(t *testing.T) (top, so string) {
	t.Helper()
	top = filepath.Join(t.TempDir(), "plugins")
	require.NoError(t, os.MkdirAll(filepath.Join(top, "sub"), 0o755))
	so = filepath.Join(top, "sub", "p.so")
	require.NoError(t, os.WriteFile(so, nil, 0o755))
	return top, so
}

// reasons returns the reason and path of each problem, for comparing.
func reasons(problems []*TrustError) []string {
	var out []string
	for _, p := range problems {
		out = append(out, p.Err.Error()+" "+p.Path)
	}
	return out
}

func TestTrustAcceptsSafeTree(t *testing.T) {
	t.Parallel()
	top, so := trustTree(t)
	trust := Trust{UID: os.Geteuid(), Dirs: []string{top}}
	assert.Empty(t, trust.Check(so, top, false))
	// Above top is none of the checks' business: the test's temporary
	// directory lies in /tmp, writable by everyone.
	require.NoError(t, os.Chmod(filepath.Dir(top), 0o777))
	assert.Empty(t, trust.Check(so, top, false))
}

func TestTrustModes(t *testing.T) {
	t.Parallel()
	top, so := trustTree(t)
	sub := filepath.Dir(so)
	trust := Trust{UID: os.Geteuid(), Dirs: []string{top}}

	require.NoError(t, os.Chmod(so, 0o757))
	require.NoError(t, os.Chmod(sub, 0o775))
	problems := trust.Check(so, top, false)
	assert.Equal(t, []string{ErrWritable.Error() + " " + so, ErrWritable.Error() + " " + sub}, reasons(problems),
		"the file, then each directory up to top")
	assert.Equal(t, "plugin file "+so+" (mode 0757, owner "+userName(os.Geteuid())+") is writable by others, "+
		"who could replace the plugin: chmod go-w "+so, problems[0].Error())
	assert.Contains(t, problems[1].Error(), "directory "+sub+" (mode 0775, ")
	assert.Contains(t, problems[1].Error(), "is writable by its group")
	for _, p := range problems {
		assert.True(t, p.Permissions())
	}

	require.NoError(t, os.Chmod(so, 0o755))
	require.NoError(t, os.Chmod(sub, 0o755))
	require.NoError(t, os.Chmod(top, 0o777))
	assert.Equal(t, []string{ErrWritable.Error() + " " + top}, reasons(trust.Check(so, top, false)), "top itself counts")

	require.NoError(t, os.Chmod(top, 0o755))
	require.NoError(t, os.Chmod(so, os.ModeSetuid|0o755))
	problems = trust.Check(so, top, false)
	require.Len(t, problems, 1)
	assert.ErrorIs(t, problems[0], ErrSetID)
	assert.False(t, problems[0].Permissions(), "never to be accepted")
	assert.Contains(t, problems[0].Error(), "(mode 4755, ")
	assert.Contains(t, problems[0].Error(), "is setuid, which a plugin never needs: chmod ug-s "+so)
	require.NoError(t, os.Chmod(so, os.ModeSetgid|0o755))
	assert.Contains(t, trust.Check(so, top, false)[0].Error(), "is setgid")
}

// TestTrustStickyDir checks that a sticky directory counts as safe only
// when root owns it, as /tmp is.
func TestTrustStickyDir(t *testing.T) {
	t.Parallel()
	top, so := trustTree(t)
	require.NoError(t, os.Chmod(filepath.Dir(so), os.ModeSticky|0o777))
	problems := Trust{UID: os.Geteuid()}.Check(so, top, false)
	if os.Geteuid() == 0 {
		assert.Empty(t, problems, "root's sticky directory")
	} else {
		assert.Equal(t, []string{ErrWritable.Error() + " " + filepath.Dir(so)}, reasons(problems), "a sticky directory not root's")
	}
}

func TestTrustOwner(t *testing.T) {
	t.Parallel()
	top, so := trustTree(t)
	const nobody = 65534
	if os.Geteuid() != 0 {
		// Only root can give a file away; as the test's user, trust
		// another user instead, so that the test's own files are
		// another's.
		problems := Trust{UID: nobody}.Check(so, top, false)
		require.NotEmpty(t, problems)
		assert.ErrorIs(t, problems[0], ErrOwner)
		assert.Contains(t, problems[0].Error(), "belongs to a user other than root or "+userName(nobody)+", who could change it: chown root "+so)
		return
	}
	require.NoError(t, os.Chown(so, nobody, nobody))
	problems := Trust{UID: 0}.Check(so, top, false)
	assert.Equal(t, []string{ErrOwner.Error() + " " + so}, reasons(problems))
	assert.Contains(t, problems[0].Error(), "owner "+userName(nobody)+")")
	assert.Contains(t, problems[0].Error(), "belongs to a user other than root, who could change it")
	assert.Empty(t, Trust{UID: nobody}.Check(so, top, false), "the process's own user")
	require.NoError(t, os.Chown(filepath.Dir(so), nobody, nobody))
	assert.Equal(t, []string{ErrOwner.Error() + " " + so, ErrOwner.Error() + " " + filepath.Dir(so)},
		reasons(Trust{UID: 0}.Check(so, top, false)))
}

func TestTrustLinks(t *testing.T) {
	t.Parallel()
	top, so := trustTree(t)
	other, elsewhere := trustTree(t)
	uid := os.Geteuid()

	inside := filepath.Join(top, "inside.so")
	require.NoError(t, os.Symlink(so, inside))
	assert.Empty(t, Trust{UID: uid, Dirs: []string{top}}.Check(inside, top, false), "a link within the plugin directory")

	out := filepath.Join(top, "out.so")
	require.NoError(t, os.Symlink(elsewhere, out))
	problems := Trust{UID: uid, Dirs: []string{top}}.Check(out, top, false)
	assert.Equal(t, []string{ErrOutside.Error() + " " + out}, reasons(problems))
	real, err := filepath.EvalSymlinks(elsewhere)
	require.NoError(t, err)
	assert.Equal(t, out+" is a symbolic link to "+real+", outside the plugin directories", problems[0].Error())
	assert.False(t, problems[0].Permissions())

	assert.Empty(t, Trust{UID: uid, Dirs: []string{top, other}}.Check(out, top, false), "into another plugin directory")
	assert.Empty(t, Trust{UID: uid, Dirs: []string{top}}.Check(out, top, true), "named by itself")

	// What a link leads to is checked as the file is, and so is the
	// directory that holds it, up to the plugin directory it lies in.
	require.NoError(t, os.Chmod(filepath.Dir(elsewhere), 0o777))
	assert.Equal(t, []string{ErrWritable.Error() + " " + filepath.Dir(real)},
		reasons(Trust{UID: uid, Dirs: []string{top}}.Check(out, top, true)))
	require.NoError(t, os.Chmod(elsewhere, 0o666))
	assert.Equal(t, []string{ErrWritable.Error() + " " + real, ErrWritable.Error() + " " + filepath.Dir(real)},
		reasons(Trust{UID: uid, Dirs: []string{top, other}}.Check(out, top, false)))
}

// TestTrustEachDirOnce reaches a directory both as the link's and as its
// target's: its problem is reported once.
func TestTrustEachDirOnce(t *testing.T) {
	t.Parallel()
	top, so := trustTree(t)
	link := filepath.Join(top, "sub", "again.so")
	require.NoError(t, os.Symlink(so, link))
	require.NoError(t, os.Chmod(top, 0o775))
	assert.Equal(t, []string{ErrWritable.Error() + " " + top}, reasons(Trust{UID: os.Geteuid(), Dirs: []string{top}}.Check(link, top, false)))
}

func TestTrustNotRegular(t *testing.T) {
	t.Parallel()
	top, _ := trustTree(t)
	dir := filepath.Join(top, "dir.so")
	require.NoError(t, os.Mkdir(dir, 0o755))
	problems := Trust{UID: os.Geteuid()}.Check(dir, top, false)
	require.Len(t, problems, 1)
	assert.ErrorIs(t, problems[0], ErrNotRegular)
}

func TestTrustMissing(t *testing.T) {
	t.Parallel()
	top, _ := trustTree(t)
	missing := filepath.Join(top, "none.so")
	problems := Trust{UID: os.Geteuid()}.Check(missing, top, false)
	require.Len(t, problems, 1)
	assert.True(t, errors.Is(problems[0], os.ErrNotExist))
	assert.Equal(t, "cannot check "+missing+": no such file or directory", problems[0].Error())
	assert.False(t, problems[0].Permissions())
}

func TestUserName(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "root (0)", userName(0))
	assert.Equal(t, "4000000000", userName(4000000000), "no such user")
}
