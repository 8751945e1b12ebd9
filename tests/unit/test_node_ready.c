/* test_node_ready: zc_node_info_ready, the rule behind a broker's /readyz
 * (docs/operations.md): a leader once its barrier applied; a follower that
 * knows a leader and is at most max_lag entries behind the commit index a
 * leader announced to it. */
#include <string.h>

#include "replication/node.h"
#include "unit.h"

static bool ready(zc_node_info_t i, unsigned lag, char *why)
{
    why[0] = 0;
    return zc_node_info_ready(&i, lag, why, 128);
}

TEST(leader_ready_after_its_barrier)
{
    char why[128];
    zc_node_info_t i = {.role = ZC_ROLE_LEADER, .term = 4, .ready = false};
    CHECK(!ready(i, 10, why));
    CHECK(strstr(why, "barrier") != NULL);
    i.ready = true;
    CHECK(ready(i, 10, why));
}

TEST(follower_needs_a_leader)
{
    char why[128];
    zc_node_info_t i = {.role = ZC_ROLE_FOLLOWER, .applied_index = 50, .leader_commit = 50};
    CHECK(!ready(i, 10, why)); /* no leader id */
    CHECK(strstr(why, "no leader") != NULL);
    i.role = ZC_ROLE_CANDIDATE;
    CHECK(!ready(i, 10, why));
    CHECK(strstr(why, "candidate") != NULL);
    i = (zc_node_info_t){.role = ZC_ROLE_FOLLOWER, .leader_id = 2, .applied_index = 7};
    CHECK(!ready(i, 10, why)); /* a leader known, nothing heard from it yet */
}

TEST(follower_within_the_lag)
{
    char why[128];
    zc_node_info_t i = {.role = ZC_ROLE_FOLLOWER, .leader_id = 2, .applied_index = 90,
                        .leader_commit = 100};
    CHECK(ready(i, 10, why));  /* 10 behind, 10 allowed */
    CHECK(!ready(i, 9, why));  /* one more than allowed */
    CHECK(strstr(why, "10 entries behind") != NULL);
    i.applied_index = 120;     /* ahead of an old announcement: not behind */
    CHECK(ready(i, 0, why));
}

int main(void)
{
    RUN(leader_ready_after_its_barrier);
    RUN(follower_needs_a_leader);
    RUN(follower_within_the_lag);
    return unit_report();
}
