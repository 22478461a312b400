/* The SQLite writer's WAL writes, combined: a VFS shim over the default VFS.
 *
 * SQLite appends each WAL frame with two write calls (its 24-byte header, then the page), so a commit
 * of N pages makes 2N pwrite system calls. On a virtual machine a pwrite costs several microseconds
 * whatever its size (BENCHMARKS.md: 120 pwrites 536-657 us, one pwritev of the same bytes 31-82 us).
 * This shim keeps the writes of a WAL file that follow one another in a buffer and hands them to the
 * default VFS as one write:
 *
 * - when a write does not continue (or overwrite part of) the buffered run: the run goes out first;
 * - right after the page of a commit frame (a frame header whose "database size" field is not zero):
 *   the commit's frames reach the file before SQLite publishes the commit in the shared wal-index,
 *   whatever the synchronous setting, so other connections read them as they would without the shim;
 * - before xSync (then the sync: FULL's durability is unchanged), xRead, xFileSize, xTruncate,
 *   xFileControl and xClose.
 * A run that fails to go out is dropped and its error returned: SQLite then rolls the transaction
 * back, and frames it never wrote are as absent as frames it wrote without a valid commit. What is
 * still buffered when the connection releases the WAL's write lock (in its database file's xShmLock)
 * is a rolled-back transaction's: it is dropped, so that it can never land later over the frames of
 * another connection's commit.
 * Other files (the database, journals, the wal-index) go straight to the default VFS.
 *
 * register() adds the VFS "rtc-wal" to the SQLite library this process shares with Python's sqlite3
 * module (a database opened as "file:PATH?vfs=rtc-wal"); stats() counts the writes it received and
 * the writes it made (the writer's /metrics and the tests).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define VFS_NAME "rtc-wal"
#define FRAME_HEADER 24
#define MAX_RUN (8 * 1024 * 1024) /* a longer run goes out before it grows further */
#define KEEP_CAP (1024 * 1024)   /* a buffer grown past this is freed once its run went out */
#define MAX_WRITE (31 * 4096)     /* the unix VFS writes at most 128 KB - 1 per call (nBuf & 0x1ffff) */

typedef struct WalFile WalFile;
struct WalFile {
    sqlite3_file base;
    sqlite3_file *real;   /* the default VFS's file, allocated right after this struct */
    WalFile *wal;         /* a database file: its connection's WAL file, while open */
    WalFile *db;          /* a WAL file: its connection's database file, while open */
    int combine;          /* a WAL file */
    int commit_page_next; /* the last write was a commit frame's header */
    unsigned char *run;
    sqlite3_int64 start;  /* file offset of run[0] */
    sqlite3_int64 len;
    sqlite3_int64 cap;
};

static sqlite3_vfs *parent;
static sqlite3_vfs shim;
static sqlite3_io_methods methods[3]; /* iVersion 1, 2 and 3, as the real file's */
static sqlite3_int64 writes_in, writes_out;

#define COUNT(n) __atomic_fetch_add(&(n), 1, __ATOMIC_RELAXED)
#define REAL(f) (((WalFile *)(f))->real)

static int flush_run(WalFile *p) {
    sqlite3_int64 len = p->len, at = 0;
    p->len = 0; /* sent or dropped: never written later, over newer frames */
    while (at < len) {
        int amt = len - at > MAX_WRITE ? MAX_WRITE : (int)(len - at);
        COUNT(writes_out);
        int rc = p->real->pMethods->xWrite(p->real, p->run + at, amt, p->start + at);
        if (rc != SQLITE_OK) return rc;
        at += amt;
    }
    if (p->cap > KEEP_CAP) { /* a large transaction's buffer is not kept for the small ones */
        sqlite3_free(p->run);
        p->run = NULL;
        p->cap = 0;
    }
    return SQLITE_OK;
}

static int w_close(sqlite3_file *f) {
    WalFile *p = (WalFile *)f;
    if (p->db != NULL) p->db->wal = NULL;
    if (p->wal != NULL) p->wal->db = NULL;
    int rc = flush_run(p);
    int rc2 = p->real->pMethods->xClose(p->real);
    sqlite3_free(p->run);
    p->run = NULL;
    p->cap = 0;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off) {
    int rc = flush_run((WalFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int grow(WalFile *p, sqlite3_int64 need) {
    if (need <= p->cap) return SQLITE_OK;
    sqlite3_int64 cap = p->cap ? p->cap : 65536;
    while (cap < need) cap *= 2;
    unsigned char *run = sqlite3_realloc64(p->run, (sqlite3_uint64)cap);
    if (run == NULL) return SQLITE_NOMEM;
    p->run = run;
    p->cap = cap;
    return SQLITE_OK;
}

static int w_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off) {
    WalFile *p = (WalFile *)f;
    int rc;
    if (!p->combine) return p->real->pMethods->xWrite(p->real, buf, amt, off);
    COUNT(writes_in);
    int commit_page = p->commit_page_next;
    const unsigned char *bytes = buf;
    p->commit_page_next = amt == FRAME_HEADER && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
    int joins = p->len > 0 && off >= p->start && off <= p->start + p->len;
    if (!joins || off + amt - p->start > MAX_RUN) {
        rc = flush_run(p);
        if (rc != SQLITE_OK) return rc;
        if (amt > MAX_WRITE) {
            COUNT(writes_out);
            return p->real->pMethods->xWrite(p->real, buf, amt, off);
        }
        p->start = off;
    }
    sqlite3_int64 at = off - p->start, end = at + amt;
    rc = grow(p, end);
    if (rc != SQLITE_OK) {
        p->len = 0;
        return rc;
    }
    memcpy(p->run + at, buf, (size_t)amt);
    if (end > p->len) p->len = end;
    return commit_page ? flush_run(p) : SQLITE_OK;
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size) {
    int rc = flush_run((WalFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int w_sync(sqlite3_file *f, int flags) {
    int rc = flush_run((WalFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int w_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    int rc = flush_run((WalFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int w_lock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xLock(REAL(f), level); }
static int w_unlock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xUnlock(REAL(f), level); }
static int w_check_reserved(sqlite3_file *f, int *out) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int w_file_control(sqlite3_file *f, int op, void *arg) {
    int rc = flush_run((WalFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int w_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int w_device(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }

static int w_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **out) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, out);
}
static int w_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
    WalFile *wal = ((WalFile *)f)->wal;
    if (wal != NULL && offset == 0 && flags == (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE)) {
        /* The write lock (wal.c's WAL_WRITE_LOCK, slot 0) is released: the transaction ended. A commit
         * sent its run at its commit frame, so what is still buffered belongs to a rolled-back one: it
         * is dropped, never written later over frames that another connection may commit meanwhile. */
        wal->len = 0;
        wal->commit_page_next = 0;
    }
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void w_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int w_shm_unmap(sqlite3_file *f, int delete_flag) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}
static int w_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out) {
    int rc = flush_run((WalFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xFetch(REAL(f), off, amt, out);
}
static int w_unfetch(sqlite3_file *f, sqlite3_int64 off, void *page) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, page);
}

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out_flags) {
    WalFile *p = (WalFile *)f;
    (void)vfs;
    memset(p, 0, sizeof(*p));
    p->real = (sqlite3_file *)&p[1];
    int rc = parent->xOpen(parent, name, p->real, flags, out_flags);
    if (p->real->pMethods == NULL) {
        p->base.pMethods = NULL; /* SQLite calls no xClose then */
        return rc;
    }
    int version = p->real->pMethods->iVersion;
    p->base.pMethods = &methods[(version < 1 ? 1 : version > 3 ? 3 : version) - 1];
    p->combine = (flags & SQLITE_OPEN_WAL) != 0;
    if (p->combine && name != NULL) { /* pair it with its database file (opened through this VFS too) */
        sqlite3_file *db = sqlite3_database_file_object(name);
        if (db != NULL && db->pMethods >= &methods[0] && db->pMethods <= &methods[2]) {
            p->db = (WalFile *)db;
            p->db->wal = p;
        }
    }
    return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    (void)vfs;
    return parent->xDelete(parent, name, sync_dir);
}
static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    return parent->xAccess(parent, name, flags, out);
}
static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
    (void)vfs;
    return parent->xFullPathname(parent, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *vfs, const char *name) {
    (void)vfs;
    return parent->xDlOpen(parent, name);
}
static void v_dlerror(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    parent->xDlError(parent, n, out);
}
static void (*v_dlsym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    (void)vfs;
    return parent->xDlSym(parent, handle, symbol);
}
static void v_dlclose(sqlite3_vfs *vfs, void *handle) {
    (void)vfs;
    parent->xDlClose(parent, handle);
}
static int v_randomness(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    return parent->xRandomness(parent, n, out);
}
static int v_sleep(sqlite3_vfs *vfs, int us) {
    (void)vfs;
    return parent->xSleep(parent, us);
}
static int v_current_time(sqlite3_vfs *vfs, double *out) {
    (void)vfs;
    return parent->xCurrentTime(parent, out);
}
static int v_last_error(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    return parent->xGetLastError ? parent->xGetLastError(parent, n, out) : 0;
}
static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    (void)vfs;
    return parent->xCurrentTimeInt64(parent, out);
}

static void fill_methods(void) {
    for (int i = 0; i < 3; i++) {
        sqlite3_io_methods *m = &methods[i];
        m->iVersion = i + 1;
        m->xClose = w_close;
        m->xRead = w_read;
        m->xWrite = w_write;
        m->xTruncate = w_truncate;
        m->xSync = w_sync;
        m->xFileSize = w_file_size;
        m->xLock = w_lock;
        m->xUnlock = w_unlock;
        m->xCheckReservedLock = w_check_reserved;
        m->xFileControl = w_file_control;
        m->xSectorSize = w_sector_size;
        m->xDeviceCharacteristics = w_device;
        if (i >= 1) {
            m->xShmMap = w_shm_map;
            m->xShmLock = w_shm_lock;
            m->xShmBarrier = w_shm_barrier;
            m->xShmUnmap = w_shm_unmap;
        }
        if (i >= 2) {
            m->xFetch = w_fetch;
            m->xUnfetch = w_unfetch;
        }
    }
}

static PyObject *py_register(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (sqlite3_vfs_find(VFS_NAME) != NULL) return PyUnicode_FromString(VFS_NAME);
    parent = sqlite3_vfs_find(NULL);
    if (parent == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SQLite has no default VFS");
        return NULL;
    }
    fill_methods();
    shim.iVersion = parent->iVersion < 2 ? parent->iVersion : 2;
    shim.szOsFile = (int)sizeof(WalFile) + parent->szOsFile;
    shim.mxPathname = parent->mxPathname;
    shim.zName = VFS_NAME;
    shim.xOpen = v_open;
    shim.xDelete = v_delete;
    shim.xAccess = v_access;
    shim.xFullPathname = v_full_pathname;
    shim.xDlOpen = v_dlopen;
    shim.xDlError = v_dlerror;
    shim.xDlSym = v_dlsym;
    shim.xDlClose = v_dlclose;
    shim.xRandomness = v_randomness;
    shim.xSleep = v_sleep;
    shim.xCurrentTime = v_current_time;
    shim.xGetLastError = v_last_error;
    if (shim.iVersion >= 2) shim.xCurrentTimeInt64 = v_current_time64;
    int rc = sqlite3_vfs_register(&shim, 0);
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_RuntimeError, "sqlite3_vfs_register failed: %d", rc);
        return NULL;
    }
    return PyUnicode_FromString(VFS_NAME);
}

static PyObject *py_stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("(LL)", (long long)__atomic_load_n(&writes_in, __ATOMIC_RELAXED),
                         (long long)__atomic_load_n(&writes_out, __ATOMIC_RELAXED));
}

static PyMethodDef module_methods[] = {
    {"register", py_register, METH_NOARGS,
     "Register the VFS \"rtc-wal\" over SQLite's default VFS (once); its name."},
    {"stats", py_stats, METH_NOARGS,
     "(WAL writes received, writes made) in this process since it started."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walvfs", "SQLite's WAL writes combined (see the source's header).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__walvfs(void) { return PyModule_Create(&module); }
