PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE trials (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id      TEXT NOT NULL UNIQUE,
    arch          TEXT NOT NULL,
    controller    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
    accuracy      REAL,
    macs          INTEGER,
    params        INTEGER,
    reward        REAL,
    latency_ms    REAL,
    train_seconds REAL,
    epochs        INTEGER,
    error         TEXT,
    node          TEXT,
    started_at    REAL NOT NULL,
    finished_at   REAL
);
INSERT INTO trials VALUES(1,'evolution-0','stem_c8_s2,ir_r1_k5_s1_e3_c4_noskip,ds_r2_k3_s2_e1_c16,ir_r2_k5_s2_e3_c24_se0.25,head_c32,act_silu','evolution','ok',0.140625,2024416,45990,0.14050560583012899895,NULL,0.22918425199986813822,1,NULL,'192.0.2.2',1795478956.4876158237,1795478963.7056753635);
INSERT INTO trials VALUES(2,'evolution-1','stem_c8_s2,ir_r1_k5_s1_e3_c8_se0.25_noskip,ir_r2_k3_s2_e3_c16,ds_r2_k5_s2_e1_c12_se0.25,head_c32,act_silu','evolution','ok',0.109375,2205992,39385,0.10862702621479783382,NULL,0.25682752800003072479,1,NULL,'192.0.2.2',1795478956.4941143989,1795478963.9140763282);
INSERT INTO trials VALUES(3,'evolution-2','stem_c8_s2,ir_r1_k3_s1_e3_c4_se0.25_noskip,ds_r2_k3_s2_e1_c8_noskip,ds_r2_k3_s2_e1_c24_se0.25,head_c32,act_relu','evolution','ok',0.109375,938656,36630,0.11532267655427941299,NULL,0.154077032999794028,1,NULL,'192.0.2.2',1795478963.7121002674,1795478963.8917212486);
INSERT INTO trials VALUES(4,'evolution-3','stem_c8_s2,ir_r1_k5_s1_e3_c8_noskip,ir_r2_k5_s2_e3_c16,ir_r2_k5_s2_e3_c12_se0.25,head_c32,act_relu','evolution','ok',0.09375,2858072,44423,0.091436218027356630511,NULL,0.24690615000008619972,1,NULL,'192.0.2.2',1795478963.8958101272,1795478964.1708874702);
INSERT INTO trials VALUES(5,'evolution-4','stem_c8_s2,ds_r1_k5_s1_e1_c8_se0.25,ds_r2_k3_s2_e1_c16_noskip,ir_r2_k3_s2_e3_c12_se0.25,head_c32,act_silu','evolution','ok',0.109375,1039480,38769,0.11450199038853199617,NULL,0.15499023500024122768,1,NULL,'192.0.2.2',1795478963.917633295,1795478964.1061913966);
INSERT INTO trials VALUES(6,'evolution-5','stem_c8_s2,ir_r1_k3_s1_e3_c8,ir_r2_k3_s2_e3_c8_se0.25_noskip,ir_r2_k3_s2_e3_c24,head_c32,act_silu','evolution','ok',0.0625,1734080,42012,0.063127309208287296637,NULL,0.20271205000017289421,1,NULL,'192.0.2.2',1795478964.1095807552,1795478964.3358325958);
INSERT INTO trials VALUES(7,'evolution-6','stem_c8_s2,ds_r1_k3_s1_e1_c8_se0.25_noskip,ds_r2_k3_s2_e1_c8_se0.25,ds_r2_k5_s2_e1_c12,head_c32,act_relu','evolution','ok',0.109375,534112,35138,0.11996537122478334591,NULL,0.10413600500032771378,1,NULL,'192.0.2.2',1795478964.1748239994,1795478964.3072059154);
INSERT INTO trials VALUES(8,'evolution-7','stem_c8_s2,ds_r1_k5_s1_e1_c4_se0.25,ir_r2_k3_s2_e3_c16_se0.25_noskip,ds_r2_k5_s2_e1_c24,head_c32,act_silu','evolution','ok',0.140625,1295544,39591,0.14496494110549551503,NULL,0.18546916000013879965,1,NULL,'192.0.2.2',1795478964.3109424114,1795478964.520509243);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version','1');
INSERT INTO meta VALUES('created_at','1795478951.8988287');
INSERT INTO meta VALUES('config','{"space": "@SPACE@", "controller": "evolution", "trials": 8, "concurrency": 2, "gpus_per_trial": 0.0, "cpus_per_trial": 1.0, "data": "synthetic", "epochs": null, "batch_size": null, "target_macs": null, "w": null, "name": "v1run", "storage": "@STORAGE@", "seed": 0, "address": "local", "max_train_samples": 256, "max_val_samples": 64, "resolution": null, "progress_seconds": 2.0, "controller_options": {}}');
INSERT INTO meta VALUES('name','"v1run"');
INSERT INTO meta VALUES('controller','"evolution"');
INSERT INTO meta VALUES('space','"@SPACE@"');
INSERT INTO meta VALUES('trials','8');
INSERT INTO meta VALUES('seed','0');
INSERT INTO meta VALUES('reward_kind','"soft"');
INSERT INTO meta VALUES('target_macs','2000000.0');
INSERT INTO meta VALUES('w','-0.07');
INSERT INTO meta VALUES('controller_state','{"controller": "evolution", "seed": 0, "rng": {"bit_generator": "PCG64", "state": {"state": 32007889878825381568516579024833504419, "inc": 87136372517582989555478159403783844777}, "has_uint32": 0, "uinteger": 2492508618}, "next_id": 8, "pending": {}, "in_flight": {}, "stats": {"asked": 8, "told": 8, "failed": 0, "rejected": 0, "cached": 0, "waited": 0}, "algorithm": {"population": [[[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0], 0.140505605830129], [[0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0], 0.11532267655427941], [[1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0], 0.10862702621479783], [[1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0], 0.114501990388532], [[0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0], 0.09143621802735663], [[0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0], 0.11996537122478335], [[1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0], 0.0631273092082873], [[1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0], 0.14496494110549552]], "random_in_flight": 0}}');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('trials',8);
CREATE INDEX trials_status ON trials (status);
CREATE INDEX trials_reward ON trials (reward);
COMMIT;
