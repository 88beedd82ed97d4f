"""MobileMamba (arXiv 2411.15941) MRFFI ablations over the flags of our backbone (S6, top-1).

The paper's full ablation tables were not found in any public text this project can read (the
table's ``caveats`` say so in the report): every cell but the official S6 baseline is NOT_PUBLISHED,
and the one published direction (three stages beat four) is a claim without absolute numbers.
"""
from .schema import NOT_PUBLISHED, AblationTable, Claim, Row, Source

_UNPUBLISHED = dict(top1=NOT_PUBLISHED)


def _mrffi(**flags) -> dict:
    return dict(mrffi_cfg=flags)


MRFFI = AblationTable(
    name='mobilemamba_mrffi',
    title='MRFFI design ablation (MobileMamba-S6, ImageNet-1K 224 px, 300 epochs)',
    source=Source('MobileMamba (arXiv 2411.15941)', 'CVPR 2025 / official README',
                  'ablation section (cells not public)'),
    model='mobilemamba',
    arch='S6',
    metrics=('top1',),
    base_configs={'cls': 'cls_configs/mobilemamba/mobilemamba-s6_in1k.py'},
    rows=(
        Row('MRFFI (official)', 'official', {}, dict(top1=78.0),
            notes=('Official README, S6 without distillation (80.7 with 1000 epochs + KD).',)),
        Row('w/o wavelet (WTE off)', 'no-wavelet', _mrffi(wavelet=False), _UNPUBLISHED),
        Row('w/o identity', 'no-identity', _mrffi(identity=False), _UNPUBLISHED),
        Row('multi-kernel MK-DeConv', 'multi-kernel', _mrffi(local_op='multi'), _UNPUBLISHED,
            notes=('The paper describes MK-DeConv with kernels 3, 5, ..., 2n+1; the official '
                   'code uses one depthwise k x k conv per stage (the official row).',)),
        Row('unidirectional scan', 'uni-scan', _mrffi(scan='uni'), _UNPUBLISHED),
        Row('four stages', 'four-stages', dict(stages=4), _UNPUBLISHED,
            notes=('The paper reports three stages beating four by +0.4 top-1 at equal '
                   'throughput; the absolute numbers are not public.',)),
    ),
    caveats=('The paper\'s ablation cells (ratios, kernels, wavelet, identity) are not published '
             'in any text available to this project: "n/p" there means unknown, never zero.',),
    claims=(Claim('official', 'four-stages', 'three stages > four (+0.4 in the paper)'),),
    input_size=224,
)
