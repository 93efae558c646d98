#ifndef KILN_CHIREDIS_SHIM_H
#define KILN_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
