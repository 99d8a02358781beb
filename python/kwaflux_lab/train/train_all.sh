#!/bin/sh
# Train the three shipped models in turns within a total time budget, resuming where the last
# run stopped (checkpoints and their validation logs live in python/checkpoints/, committed).
#
#   sh python/kwaflux_lab/train/train_all.sh [--hours H] [--stint MINUTES] [--export] [--with-temporal]
#                                            [--patches FILE] [--suffix S] [--order "sr-x2 denoise sr-x4"]
#                                            [-- extra trainer args]
#
# The budget is split denoise 50%, x2 30%, x4 20%, handed out in stints (30 min by default) in
# rotation, so a session cut short still advances every model. Each model's learning-rate
# schedule spans its planned total (--hours in the trainers: 6, 4 and 3 hours), summed over all
# the stints of every session. Extra arguments go to every trainer, e.g. `-- --device cuda`.
# With --export the models are exported to kwaflux_ofx/models/ at the end (kwaflux_lab.train.export).
# With --with-temporal the learned multi-frame denoiser (kwaflux_lab.train.temporal, 6 planned hours, not
# shipped yet) joins the rotation with 20% of the budget (denoise 40%, x2 25%, x4 15%); its
# cached windows are built first where missing (kwaflux_lab.sets.temporal_data), and rebuilt with fresh
# motion and noise before each of its stints (--refresh: the set is small, 760 windows).
# --patches trains the image models from another prepared file (e.g. data/patches-v2.npz, built
# by kwaflux_lab.sets.patches_v2) and --suffix names their checkpoints apart (-v2: sr-x2-v2.pt, ...), so a
# run on new data leaves the shipped checkpoints alone; --order sets the rotation's order.
set -eu
cd "$(dirname "$0")/../.."  # python/: the jobs run as modules of kwaflux_lab from here
PY=${PY:-../.venv/bin/python}
HOURS=2
STINT=30
EXPORT=0
TEMPORAL=0
PATCHES=""
SUFFIX=""
ORDER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) HOURS=$2; shift 2 ;;
    --stint) STINT=$2; shift 2 ;;
    --export) EXPORT=1; shift ;;
    --with-temporal) TEMPORAL=1; shift ;;
    --patches) PATCHES=$2; shift 2 ;;
    --suffix) SUFFIX=$2; shift 2 ;;
    --order) ORDER=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "train_all.sh: unknown option $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
if [ -n "$PATCHES" ]; then
  [ -f "$PATCHES" ] || { echo "train_all.sh: $PATCHES missing (python -m kwaflux_lab.sets.patches_v2)" >&2; exit 2; }
else
  [ -f data/patches.npz ] || $PY -m kwaflux_lab.sets.patches
fi

# minutes left per model, as integers (sh has no floating point)
if [ "$TEMPORAL" = 1 ]; then
  [ -f data/temporal_windows.npz ] || $PY -m kwaflux_lab.sets.temporal_data
  SH_DN=0.4 SH_X2=0.25 SH_X4=0.15 SH_T=0.2
  MODELS="denoise sr-x2 sr-x4 temporal"
else
  SH_DN=0.5 SH_X2=0.3 SH_X4=0.2 SH_T=0
  MODELS="denoise sr-x2 sr-x4"
fi
left_dn=$(awk "BEGIN{print int($HOURS*60*$SH_DN)}")
left_x2=$(awk "BEGIN{print int($HOURS*60*$SH_X2)}")
left_x4=$(awk "BEGIN{print int($HOURS*60*$SH_X4)}")
left_temporal=$(awk "BEGIN{print int($HOURS*60*$SH_T)}")
if [ -n "$ORDER" ]; then
  MODELS=$ORDER
  # A model left out of the order gets no budget (else the loop below would never end).
  case " $MODELS " in *" denoise "*) ;; *) left_dn=0 ;; esac
  case " $MODELS " in *" sr-x2 "*) ;; *) left_x2=0 ;; esac
  case " $MODELS " in *" sr-x4 "*) ;; *) left_x4=0 ;; esac
  case " $MODELS " in *" temporal "*) ;; *) left_temporal=0 ;; esac
fi

EXTRA="$*"  # trainer options have no spaces in them
IMG=""  # options of the image models only
[ -n "$PATCHES" ] && IMG="--patches $PATCHES"
[ -n "$SUFFIX" ] && IMG="$IMG --name-suffix=$SUFFIX"  # = : the suffix starts with a dash
run() {  # run NAME MINUTES: one stint of one model
  case "$1" in
    denoise) $PY -m kwaflux_lab.train.denoise --hours 6 --minutes "$2" $IMG $EXTRA ;;
    sr-x2) $PY -m kwaflux_lab.train.sr --scale 2 --hours 4 --minutes "$2" $IMG $EXTRA ;;
    sr-x4) $PY -m kwaflux_lab.train.sr --scale 4 --hours 3 --minutes "$2" $IMG $EXTRA ;;
    temporal) $PY -m kwaflux_lab.train.temporal --hours 6 --minutes "$2" --refresh $EXTRA ;;
  esac
}

while [ "$left_dn" -gt 0 ] || [ "$left_x2" -gt 0 ] || [ "$left_x4" -gt 0 ] ||
  [ "$left_temporal" -gt 0 ]; do
  for name in $MODELS; do
    eval "left=\$left_$(echo $name | sed 's/denoise/dn/; s/sr-//')"
    [ "$left" -gt 0 ] || continue
    m=$(( left < STINT ? left : STINT ))
    echo "== $name: stint of $m min ($left min left in this budget)"
    run "$name" "$m"
    eval "left_$(echo $name | sed 's/denoise/dn/; s/sr-//')=$(( left - m ))"
  done
done
[ "$EXPORT" = 1 ] && $PY -m kwaflux_lab.train.export
exit 0
