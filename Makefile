# rnnlm: recurrent language models inside PostgreSQL.
#
#   make                 build rnnlm.so
#   make install         install into the PostgreSQL found by pg_config
#   make installcheck    regression suite against a running server
#   make core-test       standalone unit tests of the C core (TAP output)
#   make core-test-asan  the same under AddressSanitizer and UBSan
#   make test            everything: see test/run.sh (throwaway cluster)
#   make demo            the main job on the fortunes corpus: see test/demo.sh
#   make bench           rnnlm against PyTorch on this machine: see bench/run.sh

EXTENSION = rnnlm
MODULE_big = rnnlm
# Each full script after 0.1 is the one before it followed by the upgrade
# (sql/rnnlm--0.3.sql: rnnlm--0.2.sql, then rnnlm--0.2--0.3.sql), so that a
# new install and an upgraded one are the same by construction
# (test/t/110_upgrade.t compares their schemas).  They are kept in git and
# rebuilt when a part changes.
DATA = sql/rnnlm--0.1.sql sql/rnnlm--0.1--0.2.sql sql/rnnlm--0.2.sql \
	sql/rnnlm--0.2--0.3.sql sql/rnnlm--0.3.sql
PGFILEDESC = "rnnlm - recurrent language models in SQL"

CORE_SRCS = $(sort $(wildcard src/core/*.c))
PG_SRCS = $(sort $(wildcard src/pg/*.c))
OBJS = $(CORE_SRCS:.c=.o) $(PG_SRCS:.c=.o)

REGRESS = rnnlm_basic rnnlm_options rnnlm_errors rnnlm_tokenizers rnnlm_cells rnnlm_storage rnnlm_security rnnlm_readonly rnnlm_training rnnlm_planner rnnlm_precision rnnlm_uses rnnlm_pretrained rnnlm_versions rnnlm_privileges rnnlm_federated rnnlm_surprise rnnlm_provenance rnnlm_retrain rnnlm_describe
REGRESS_OPTS = --inputdir=. --load-extension=rnnlm

PG_CPPFLAGS = -Isrc/core -Isrc/pg -I$(shell $(PG_CONFIG) --includedir)
# every object is rebuilt when a header changes (PGXS tracks no headers);
# not named HEADERS, which PGXS would install into the server's include directory
RNNLM_HEADERS = $(wildcard src/core/*.h src/pg/*.h)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
SHLIB_LINK = -lpq -lutf8proc -ldl -lpthread -lm

EXTRA_CLEAN = test/core/rnnlm_core_test test/core/rnnlm_core_test_asan

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/rnnlm--0.2.sql: sql/rnnlm--0.1.sql sql/rnnlm--0.1--0.2.sql
	{ echo '/* rnnlm--0.2.sql: built by make from rnnlm--0.1.sql and rnnlm--0.1--0.2.sql; do not edit */'; \
	  sed -e '1d' sql/rnnlm--0.1.sql; \
	  sed -e '/^\\echo Use/d' sql/rnnlm--0.1--0.2.sql; } > $@

sql/rnnlm--0.3.sql: sql/rnnlm--0.2.sql sql/rnnlm--0.2--0.3.sql
	{ echo '/* rnnlm--0.3.sql: built by make from rnnlm--0.2.sql and rnnlm--0.2--0.3.sql; do not edit */'; \
	  sed -e '1d' sql/rnnlm--0.2.sql; \
	  sed -e '/^\\echo Use/d' sql/rnnlm--0.2--0.3.sql; } > $@

all: sql/rnnlm--0.2.sql sql/rnnlm--0.3.sql

$(OBJS) $(OBJS:.o=.bc): $(RNNLM_HEADERS)

# The core is plain C: its unit tests build it again without Postgres.
CORE_TEST_SRCS = $(CORE_SRCS) $(sort $(wildcard test/core/*.c))
CORE_TEST_CFLAGS = -std=gnu99 -g -Wall -Wextra -Werror -Isrc/core -Itest/core

test/core/rnnlm_core_test: $(CORE_TEST_SRCS) $(wildcard src/core/*.h) $(wildcard test/core/*.h)
	$(CC) $(CORE_TEST_CFLAGS) -O2 -o $@ $(CORE_TEST_SRCS) -lutf8proc -ldl -lpthread -lm

test/core/rnnlm_core_test_asan: $(CORE_TEST_SRCS) $(wildcard src/core/*.h) $(wildcard test/core/*.h)
	$(CC) $(CORE_TEST_CFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=undefined -o $@ $(CORE_TEST_SRCS) -lutf8proc -ldl -lpthread -lm

.PHONY: core-test core-test-asan test demo bench
core-test: test/core/rnnlm_core_test
core-test-asan: test/core/rnnlm_core_test_asan

test:
	bash test/run.sh

demo:
	bash test/demo.sh

bench:
	bash bench/run.sh
