"""The FST-Matching model in PyTorch, with fstm's parameter names (fstm/lib/fst_model.h), as the
oracle of the tests and the baseline of bench/bench_fst.py:

  source_encoder, target_encoder  torchvision ResNets whose own fc is the identity head
  source_se, target_se            .fc = Sequential(Linear(C, C/16, bias=False), ReLU,
                                                   Linear(C/16, C, bias=False), Sigmoid)
  det_head                        Sequential(Linear(2C, 2)) or Sequential(Linear(2C, H), ReLU, Linear(H, 2))

forward(x) -> det logits of h([f_t^ir, f_s^ir]); losses() gives CE(det) + l_s CE(src) + l_t CE(tgt)
+ l_int L_int with the margin m_n = I_n(y_n) - I_n(1 - y_n) and L_int = mean softplus(-m) ("logistic",
the default), -mean min(m, C) ("clamp:C") or -mean m ("none")."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class SE(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // r, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(c // r, c, bias=False), nn.Sigmoid())

    def forward(self, f):
        return self.fc(f)


class FstModel(nn.Module):
    def __init__(self, arch="resnet18", identities=2, head="mlp", hidden=256):
        super().__init__()
        self.source_encoder = getattr(torchvision.models, arch)(num_classes=identities)
        self.target_encoder = getattr(torchvision.models, arch)(num_classes=identities)
        c = self.source_encoder.fc.in_features
        self.source_se = SE(c)
        self.target_se = SE(c)
        if head == "linear":
            self.det_head = nn.Sequential(nn.Linear(2 * c, 2))
        else:
            self.det_head = nn.Sequential(nn.Linear(2 * c, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    @staticmethod
    def pooled(net, x):
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    def forward_all(self, x):
        f_s, f_t = self.pooled(self.source_encoder, x), self.pooled(self.target_encoder, x)
        a_s, a_t = self.source_se(f_s), self.target_se(f_t)
        src = self.source_encoder.fc(a_s * f_s)
        tgt = self.target_encoder.fc(a_t * f_t)
        s_ir, t_ir = (1 - a_s) * f_s, (1 - a_t) * f_t
        det = self.det_head(torch.cat([t_ir, s_ir], 1))
        z = torch.zeros_like(s_ir)
        inter = (det - self.det_head(torch.cat([t_ir, z], 1)) - self.det_head(torch.cat([z, s_ir], 1))
                 + self.det_head(torch.cat([z, z], 1)))
        return det, src, tgt, inter

    def forward(self, x):
        return self.forward_all(x)[0]

    def losses(self, x, det, src, tgt, l_s=0.5, l_t=1.0, l_int=100.0, bound="logistic"):
        d, s, t, inter = self.forward_all(x)
        margin = inter.gather(1, det[:, None])[:, 0] - inter.gather(1, (1 - det)[:, None])[:, 0]
        if bound == "logistic":
            l_inter = F.softplus(-margin).mean()
        elif bound.startswith("clamp:"):
            l_inter = -margin.clamp(max=float(bound[6:])).mean()
        else:
            l_inter = -margin.mean()
        return F.cross_entropy(d, det) + l_s * F.cross_entropy(s, src) + l_t * F.cross_entropy(t, tgt) + l_int * l_inter
