/*
 * job_files.c
 *		A training job's checkpoint, kept as a file under the data directory
 *		rather than in its row.
 *
 * A checkpoint holds the weights, both Adam moments and the best weights:
 * about four times what the finished model stores.  Written into the job's
 * row after every epoch, it made a job write several times the WAL of the
 * same synchronous training.  So it is written to
 * pg_rnnlm/job_<database>_<job>.ckpt in the data directory: a new file
 * each time, fsynced and renamed over the old one (durable_rename), so that
 * a crash leaves either checkpoint whole; the row records only when it was
 * taken.  The file is removed when the job ends, is cancelled or forgotten.
 * Not being in the WAL, it does not reach a standby: a failover loses the
 * checkpoint of a running job (the job restarts from the beginning when
 * resumed there), never the job row or a finished model.
 */
#include "rnnlm_pg.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file_perm.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#define JOB_FILE_DIR "pg_rnnlm"

/* The path, relative to the data directory, of a job's checkpoint file. */
static char *
job_file_path(Oid database, int64 job_id, const char *suffix)
{
	return psprintf(JOB_FILE_DIR "/job_%u_" INT64_FORMAT ".ckpt%s", database, job_id, suffix);
}

/* Writes the checkpoint of job job_id of this database, replacing any. */
void
rnnlm_job_file_write(int64 job_id, const uint8 *data, size_t len)
{
	char	   *tmp = job_file_path(MyDatabaseId, job_id, ".tmp");
	char	   *path = job_file_path(MyDatabaseId, job_id, "");
	int			fd;
	size_t		done = 0;

	if (MakePGDirectory(JOB_FILE_DIR) < 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", JOB_FILE_DIR)));
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	while (done < len)
	{
		ssize_t		n = write(fd, data + done, Min(len - done, (size_t) 1 << 30));

		if (n <= 0)
		{
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				errno = ENOSPC;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", tmp)));
		}
		done += (size_t) n;
		CHECK_FOR_INTERRUPTS();
	}
	if (pg_fsync(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", tmp)));
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", tmp)));
	(void) durable_rename(tmp, path, ERROR);
}

/* The checkpoint of a job of this database, in the current context; NULL when it has none. */
bytea *
rnnlm_job_file_read(int64 job_id)
{
	char	   *path = job_file_path(MyDatabaseId, job_id, "");
	struct stat st;
	bytea	   *result;
	int			fd;
	size_t		done = 0;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	}
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	if ((uint64) st.st_size > MaxAllocHugeSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("checkpoint file \"%s\" is too large", path)));
	result = palloc_extended(VARHDRSZ + (size_t) st.st_size, MCXT_ALLOC_HUGE);
	SET_VARSIZE(result, VARHDRSZ + (size_t) st.st_size);
	while (done < (size_t) st.st_size)
	{
		ssize_t		n = read(fd, VARDATA(result) + done, Min((size_t) st.st_size - done, (size_t) 1 << 30));

		if (n <= 0)
		{
			if (n < 0 && errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", path)));
		}
		done += (size_t) n;
		CHECK_FOR_INTERRUPTS();
	}
	CloseTransientFile(fd);
	return result;
}

/* Removes the checkpoint of a job of this database, if it has one. */
void
rnnlm_job_file_remove(int64 job_id)
{
	char	   *path = job_file_path(MyDatabaseId, job_id, "");

	if (unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
}
