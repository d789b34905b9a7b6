/* subsys.c — wiring of the launcher's subsystems (start, passes, stop).
 *
 * DESIGN. launcher.c knows only these entry points; each subsystem stays in
 * its own file and is called from here in a fixed order. */
#include "launcher.h"

int launcher_subsystems_start(struct launcher *l) { return 0; }
void launcher_subsystems_stop(struct launcher *l) {}
void launcher_subsystems_free(struct launcher *l) {}
void launcher_run_passes(struct launcher *l) {}
void launcher_tick(struct launcher *l) {}
void launcher_session_lost(struct launcher *l) {}
void pools_sync(struct launcher *l) {}
